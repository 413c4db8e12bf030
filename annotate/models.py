"""Studies and what happens in them: trials, assignments to annotators, judgments."""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from generation.models import Corpus, Generator, Item, Sample
from generation.presentation import PresentationPolicy
from workspaces.models import Workspace


def default_presentation_policy() -> dict:
    return PresentationPolicy().to_dict()


class Side(models.TextChoices):
    LEFT = "left"
    RIGHT = "right"


class Annotator(models.Model):
    """A person who judges: from an invite link, a crowd platform, or a named account."""

    class Source(models.TextChoices):
        INVITE = "invite"
        PROLIFIC = "prolific"
        ACCOUNT = "account"
        SIMULATED = "simulated"

    # The only identifier that leaves the server, in exports and reports.
    pseudonym = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source = models.CharField(max_length=10, choices=Source.choices)
    external_id = models.CharField(
        max_length=200, blank=True, help_text="The crowd platform's id, e.g. PROLIFIC_PID."
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~Q(external_id=""),
                name="annotator_unique_external_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id or self.pseudonym}"


class Study(models.Model):
    """An annotation campaign over one corpus and some generators."""

    class Question(models.TextChoices):
        PREFERENCE = "preference"
        REALISM = "realism"
        CUSTOM = "custom"

    class Allocation(models.TextChoices):
        PROPORTIONAL = "proportional"
        EQUAL = "equal"

    class Pairs(models.TextChoices):
        NEIGHBOURS = "neighbours"
        UNCERTAIN = "uncertain"

    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        CLOSED = "closed"

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="studies")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    corpus = models.ForeignKey(Corpus, on_delete=models.PROTECT, related_name="studies")
    generators = models.ManyToManyField(Generator, related_name="studies", blank=True)
    question = models.CharField(max_length=10, choices=Question.choices, default=Question.PREFERENCE)
    question_text = models.CharField(max_length=500, blank=True)
    instructions = models.TextField(blank=True)
    consent_text = models.TextField(blank=True)
    judgments_per_trial = models.PositiveIntegerField(default=3)
    catch_rate = models.FloatField(default=0.1)
    calibration_rate = models.FloatField(default=0.05)
    seeds_per_item = models.PositiveIntegerField(
        default=1,
        help_text="Samples judged per generator and prompt: its lowest seeds up to this many, each its own trial.",
    )
    quota_per_annotator = models.PositiveIntegerField(default=40)
    assignment_timeout_seconds = models.PositiveIntegerField(default=600)
    exposure_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Mask both images this long after they appear (timed exposure)."
    )
    break_every = models.PositiveIntegerField(
        default=0, help_text="Offer a break after every this many judgments; 0 never does."
    )
    practice_trials = models.PositiveIntegerField(
        default=3,
        help_text="Practice trials with feedback before the study; their items are set aside, never in the study.",
    )
    presentation_policy = models.JSONField(
        default=default_presentation_policy,
        help_text="The presentation policy both images of every trial went through.",
    )
    completion_code = models.CharField(max_length=100, blank=True)
    # Exclusion rules: applied when the study is analysed, never by deleting data. A
    # blank threshold switches its rule off.
    exclude_catch_accuracy_below = models.FloatField(
        null=True, blank=True, default=0.8,
        help_text="Exclude annotators whose catch-trial accuracy is below this share.",
    )
    min_catch_trials = models.PositiveIntegerField(
        default=1,
        help_text="Apply the catch-trial rule only to annotators dealt at least this many catch trials.",
    )
    exclude_fast_share_above = models.FloatField(
        null=True, blank=True, default=0.2,
        help_text="Exclude annotators with more than this share of answers under fast_response_ms.",
    )
    fast_response_ms = models.PositiveIntegerField(
        default=400, help_text="A client response time under this counts as too fast to have looked."
    )
    exclude_side_bias = models.BooleanField(
        default=False, help_text="Exclude annotators with a significant side bias (Bonferroni-corrected)."
    )
    exclude_agreement_below = models.FloatField(
        null=True, blank=True, help_text="Exclude annotators agreeing with the majority on shared trials below this share."
    )
    # Planning: analysis writes `generators_done`; the assignment engine only reads it.
    target_half_width = models.FloatField(
        null=True, blank=True,
        help_text="Stop serving a generator once its 95% interval is at most this half-width; blank never stops.",
    )
    generators_done = models.JSONField(
        default=list, blank=True,
        help_text="Ids of generators whose interval is narrow enough (written by the analysis): no more of their trials are issued.",
    )
    # Generators added to or removed from the study after its trials were built
    # (`services.study_add_generators`), oldest first: {"generator", "name", "event":
    # "added" | "removed", "at"}. A removed generator's trials stay, unserved.
    generator_history = models.JSONField(default=list, blank=True)
    # The seed of the random choices of `services.study_build_trials` (practice and
    # control items, catch corruptions, shuffles): set by the first build, reused by
    # later ones, so a study's trials can be built again exactly; every report shows it.
    trial_seed = models.BigIntegerField(
        null=True, blank=True, help_text="Seed of the trial build (set by the first build; reports show it)."
    )
    # Which items of the corpus the study uses (`services.items`): fixed once open.
    item_filters = models.JSONField(
        default=list, blank=True,
        help_text="Filters on the references' facts and the items' metadata, such as \"width>=512\" or "
        "\"meta.pwatermark<0.5\"; an item must pass all.",
    )
    sample_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="Use a seeded sample of this many of the items that pass the filters.",
    )
    sample_seed = models.PositiveIntegerField(default=0, help_text="Seed of the sample: the same seed, the same items.")
    stratify_by = models.CharField(
        max_length=200, blank=True, help_text="An item metadata field whose values each get their share of the sample.",
    )
    allocation = models.CharField(
        max_length=12, choices=Allocation.choices, default=Allocation.PROPORTIONAL,
        help_text="Each value's share of a stratified sample: `proportional` to its items, or `equal`.",
    )
    include_blank_samples = models.BooleanField(
        default=False, help_text="Build trials on blank or near-constant samples too (safety-filtered outputs).",
    )
    # What the last build's selection did: items, each filter's removals, the sample.
    item_selection = models.JSONField(default=dict, blank=True)
    report_categories = models.JSONField(
        default=list, blank=True,
        help_text="Item metadata fields the report gives results per value of (where parity comes first).",
    )
    # Head-to-head trials and anchors: they may change while the study runs.
    head_to_head_share = models.FloatField(
        default=0.0,
        help_text="Share of the judgments (after controls) given to head-to-head trials: two generators' "
        "samples of one prompt.",
    )
    head_to_head_pairs = models.CharField(
        max_length=10, choices=Pairs.choices, default=Pairs.NEIGHBOURS,
        help_text="Which generators meet head to head: `neighbours` along a scale axis within a series, or the "
        "`uncertain` pairs, whose order the judgments so far leave most in doubt.",
    )
    head_to_head_axis = models.CharField(
        max_length=100, blank=True,
        help_text="The scale axis that makes neighbours; blank takes each series' first axis that varies.",
    )
    anchor_generators = models.JSONField(
        default=list, blank=True,
        help_text="Ids of the study's generators kept in rotation for its whole life, so drift over time shows.",
    )
    anchor_share = models.FloatField(
        default=0.0, help_text="Share of the vs-real judgments given to the anchor generators.",
    )
    # The pairs whose head-to-head trials are built and served, [[generator, generator],
    # ...]: written by the trial build (neighbours) and by the analysis (uncertain pairs).
    head_to_head_active = models.JSONField(
        default=list, blank=True,
        help_text="Pairs of generator ids whose head-to-head trials are served (written by the build and the analysis).",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)

    def removed_generator_ids(self) -> set[int]:
        """Generators whose last event in `generator_history` is a removal."""
        last = {}
        for event in self.generator_history or ():
            last[event["generator"]] = event["event"]
        return {generator for generator, event in last.items() if event == "removed"}

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(judgments_per_trial__gte=1), name="study_judgments_per_trial_positive"
            ),
            models.CheckConstraint(
                condition=Q(catch_rate__gte=0)
                & Q(calibration_rate__gte=0)
                & Q(catch_rate__lte=1)
                & Q(calibration_rate__lte=1),
                name="study_control_rates_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "open", "closed"]), name="study_status_valid"
            ),
            models.CheckConstraint(
                condition=(Q(exclude_catch_accuracy_below__isnull=True) | Q(exclude_catch_accuracy_below__range=(0, 1)))
                & (Q(exclude_fast_share_above__isnull=True) | Q(exclude_fast_share_above__range=(0, 1)))
                & (Q(exclude_agreement_below__isnull=True) | Q(exclude_agreement_below__range=(0, 1)))
                & (Q(target_half_width__isnull=True) | Q(target_half_width__gt=0)),
                name="study_analysis_settings_valid",
            ),
            models.CheckConstraint(condition=Q(min_catch_trials__gte=1), name="study_min_catch_trials_positive"),
            models.CheckConstraint(
                condition=Q(head_to_head_share__range=(0, 1)) & Q(anchor_share__range=(0, 1))
                & Q(head_to_head_pairs__in=["neighbours", "uncertain"]),
                name="study_head_to_head_settings_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            PresentationPolicy.from_dict(self.presentation_policy)
        except (TypeError, ValueError) as exc:
            raise ValidationError({"presentation_policy": str(exc)}) from None

    @property
    def policy(self) -> PresentationPolicy:
        return PresentationPolicy.from_dict(self.presentation_policy)


class Participation(models.Model):
    """One annotator's passage through one study: where they came from, consent, completion.

    The database, not the browser session, is the truth about consent, so a returning
    participant in a new browser is not asked again.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="participations")
    annotator = models.ForeignKey(Annotator, on_delete=models.PROTECT, related_name="participations")
    prolific_study_id = models.CharField(max_length=200, blank=True)
    # Prolific issues a new SESSION_ID per attempt; the latest one is kept.
    prolific_session_id = models.CharField(max_length=200, blank=True)
    # Set when a researcher invited a named account; such a participation exists
    # before the annotator ever visits.
    invited_at = models.DateTimeField(null=True, blank=True)
    # A Prolific participation answers to the first browser that entered with its id
    # (the sha256 of that browser's signed `parity_browser` cookie), so knowing
    # someone's PROLIFIC_PID is not enough to answer for them. Empty until the first
    # entry, and again once a researcher releases it.
    browser_key = models.CharField(max_length=64, blank=True, default="")
    # The bound browser's session at its latest entry: a release ends it, so the old
    # browser stops answering for the participant.
    session_key = models.CharField(max_length=40, blank=True, default="")
    consented_at = models.DateTimeField(null=True, blank=True)
    practice_finished_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The assignment engine's running state for this annotator in this study, kept
    # here so a pick reads one locked row instead of counting the annotator's
    # history: study assignments issued (practice excluded), study judgments made,
    # assignments issued per generator id, and the reference sides still to come in
    # the current side block ("l"/"r", drawn as a shuffled balanced block).
    issued = models.PositiveIntegerField(default=0)
    judged = models.PositiveIntegerField(default=0)
    issued_per_generator = models.JSONField(default=dict, blank=True)
    pending_sides = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["study", "annotator"], name="participation_unique_study_annotator"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} in {self.study}"


class Trial(models.Model):
    """One comparison unit: a sample against its item's reference, or a control pair."""

    class Kind(models.TextChoices):
        GENERATED = "generated"
        CATCH = "catch"
        CALIBRATION = "calibration"
        # A catch pair on an item set aside for practice: shown with feedback before
        # the study, never picked by the engine, never in results.
        PRACTICE = "practice"
        # Two generators' samples of one prompt: the trial's generator against its opponent.
        HEAD_TO_HEAD = "head_to_head"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="trials")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.GENERATED)
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="trials")
    sample = models.ForeignKey(
        Sample, on_delete=models.PROTECT, null=True, blank=True, related_name="trials"
    )
    # The sample's generator, denormalised so that the engine's pick for one generator
    # is a range scan of one index.
    generator = models.ForeignKey(
        Generator, on_delete=models.PROTECT, null=True, blank=True, related_name="trials"
    )
    # Head-to-head trials: the opponent's sample takes the reference's place (it sits on
    # `Assignment.reference_side`), so the trial's generator wins where the other side
    # was chosen, exactly as on a vs-real trial.
    opponent_sample = models.ForeignKey(
        Sample, on_delete=models.PROTECT, null=True, blank=True, related_name="opposed_trials"
    )
    opponent = models.ForeignKey(
        Generator, on_delete=models.PROTECT, null=True, blank=True, related_name="opposed_trials"
    )
    # For control trials: the other image (a corrupted or re-cropped reference).
    control_image = models.FileField(max_length=300, blank=True)
    judgment_count = models.PositiveIntegerField(default=0)
    # Assignments issued and still counting: judged, or open and not yet released.
    # Denormalised so that "trials that still need judgments" is one indexed range
    # scan on a study of any size; the assignment engine keeps it at most k.
    active_count = models.PositiveIntegerField(default=0)
    # A random key drawn when the trial is built: the engine breaks ties between
    # equally needy trials by starting at a random point of this order.
    shuffle = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(judgment_count__lte=F("active_count")),
                name="trial_judged_within_active",
            ),
            models.CheckConstraint(
                condition=(Q(kind__in=["generated", "head_to_head"]) & Q(sample__isnull=False)
                           & Q(generator__isnull=False))
                | (Q(kind__in=["catch", "calibration", "practice"]) & Q(sample__isnull=True) & Q(generator__isnull=True)),
                name="trial_sample_iff_generated",
            ),
            models.CheckConstraint(
                condition=(Q(kind="head_to_head") & Q(opponent_sample__isnull=False) & Q(opponent__isnull=False)
                           & ~Q(opponent=F("generator")) & ~Q(opponent_sample=F("sample")))
                | (~Q(kind="head_to_head") & Q(opponent_sample__isnull=True) & Q(opponent__isnull=True)),
                name="trial_opponent_iff_head_to_head",
            ),
        ]
        indexes = [
            models.Index(fields=["study", "judgment_count"], name="trial_study_need_idx"),
            # The engine's pick: one kind (and generator), neediest first, then the random key.
            models.Index(fields=["study", "kind", "generator", "active_count", "shuffle"], name="trial_pick_idx"),
            # The engine's pick of a head-to-head pair.
            models.Index(
                fields=["study", "generator", "opponent", "active_count", "shuffle"],
                condition=Q(kind="head_to_head"), name="trial_pick_pair_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study} trial {self.pk} ({self.kind})"

    def save(self, *args, **kwargs):
        if self.sample_id is not None and self.generator_id is None:
            self.generator_id = self.sample.generator_id
        if self.opponent_sample_id is not None and self.opponent_id is None:
            self.opponent_id = self.opponent_sample.generator_id
        super().save(*args, **kwargs)


# Control trials: mixed into a study at its catch and calibration rates.
CONTROL_KINDS = (Trial.Kind.CATCH, Trial.Kind.CALIBRATION)


class Assignment(models.Model):
    """A trial issued to one annotator, with the side of each image drawn on the server."""

    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="assignments")
    annotator = models.ForeignKey(Annotator, on_delete=models.PROTECT, related_name="assignments")
    # Denormalised from the trial so the database itself can refuse to show one
    # annotator the same reference image twice within a study.
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="assignments")
    reference_side = models.CharField(max_length=5, choices=Side.choices)
    issued_at = models.DateTimeField(default=timezone.now)
    # When the trial was first put in front of the annotator; an assignment issued
    # ahead (so its images preload) is shown later than it is issued. The server's
    # response time runs from here.
    shown_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    # Set once when the assignment expired unanswered and its trial went back to the
    # pool. The row stays, so the annotator never gets this trial or reference again.
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["issued_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["trial", "annotator"], name="assignment_unique_trial_annotator"
            ),
            models.UniqueConstraint(
                fields=["study", "annotator", "item"], name="assignment_unique_reference_per_study"
            ),
            models.CheckConstraint(
                condition=Q(reference_side__in=["left", "right"]), name="assignment_side_valid"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("issued_at")), name="assignment_expires_after_issue"
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(released_at__isnull=True), name="assignment_unreleased_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} of {self.trial} to {self.annotator}"


class AppendOnlyError(Exception):
    pass


class Judgment(models.Model):
    """The annotator's choice on an assignment. Written once, never changed."""

    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, related_name="judgment"
    )
    choice = models.CharField(max_length=5, choices=Side.choices)
    client_response_ms = models.PositiveIntegerField(null=True, blank=True)
    server_response_ms = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(choice__in=["left", "right"]), name="judgment_choice_valid"),
        ]

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise AppendOnlyError("judgments are append-only: a saved judgment cannot change")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("judgments are append-only: exclude them at analysis time instead")

    def __str__(self) -> str:
        return f"judgment {self.pk}: {self.choice}"
