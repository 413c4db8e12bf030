"""Writes of the annotate domain (ARCHITECTURE.md: services), one module per concern.

- `studies`: creating and changing a study, building its trials, opening and closing it.
- `participations`: annotators of a link, entering, consent, finishing; invites of named accounts;
  marking simulated annotators.
- `engine`: the assignment engine — issuing, judging, expiring and releasing (path 4: Assign and judge).
- `practice`: practice trials before the study.
- `journey`: the annotator's way through a study (entry, consent, practice, trials,
  breaks, done) as one state machine that the annotator pages ask what comes next.
- `images`: the bytes an assignment's images are served as, their framings stored on first use.

Callers import from `annotate.services`.
"""

from annotate.services.engine import (
    SIDE_BLOCK_SIZES,
    assignment_next,
    assignments_expire,
    assignments_next,
    assignments_release,
    judgment_record,
    judgment_record_and_next,
)
from annotate.services.images import image_present
from annotate.services.journey import (
    Answer,
    JourneyMemory,
    Next,
    ProlificEntry,
    Step,
    journey_consent,
    journey_done,
    journey_enter,
    journey_practice,
    journey_trial,
)
from annotate.services.participations import (
    annotator_for_invite,
    annotator_for_prolific,
    annotator_mark_simulated,
    participation_consent,
    participation_enter,
    participation_finish,
    participation_invite,
    participation_release,
    practice_finish,
)
from annotate.services.practice import practice_next
from annotate.services.studies import (
    study_add_generators,
    study_build_trials,
    study_close,
    study_create,
    study_delete,
    study_head_to_head_pairs_write,
    study_open,
    study_remove_generators,
    study_update,
)

__all__ = [
    "SIDE_BLOCK_SIZES",
    "Answer",
    "JourneyMemory",
    "Next",
    "ProlificEntry",
    "Step",
    "annotator_for_invite",
    "annotator_for_prolific",
    "annotator_mark_simulated",
    "assignment_next",
    "assignments_expire",
    "assignments_next",
    "assignments_release",
    "image_present",
    "journey_consent",
    "journey_done",
    "journey_enter",
    "journey_practice",
    "journey_trial",
    "judgment_record",
    "judgment_record_and_next",
    "participation_consent",
    "participation_enter",
    "participation_finish",
    "participation_invite",
    "participation_release",
    "practice_finish",
    "practice_next",
    "study_add_generators",
    "study_build_trials",
    "study_close",
    "study_create",
    "study_delete",
    "study_head_to_head_pairs_write",
    "study_open",
    "study_remove_generators",
    "study_update",
]
