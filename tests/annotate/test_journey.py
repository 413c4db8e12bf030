"""The annotator's journey as a state machine, without pages: what each event leads to.

Each test drives `annotate.services.journey` as the views do, with a real session
store standing in for the browser's session, and checks the step it answers and the
rows behind it.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotate.errors import AssignmentNotYours, AssignmentUnknown
from annotate.models import Annotator, Assignment, Judgment, Participation, Study
from annotate.services import (
    Answer,
    JourneyMemory,
    ProlificEntry,
    Step,
    journey_consent,
    journey_done,
    journey_enter,
    journey_practice,
    journey_trial,
    participation_invite,
    study_close,
)
from annotate.sessions import SessionStore
from tests.annotate.invariants import assert_invariants
from tests.annotate.test_invites import account
from tests.annotate.test_pages import PID, opened


def session(study: Study) -> JourneyMemory:
    """A new browser session's memory of the study."""
    return JourneyMemory(SessionStore(), study)


def prolific(pid: str = PID, browser: str = "browser-a", **ids) -> ProlificEntry:
    return ProlificEntry(participant_id=pid, browser_key=browser, **ids)


def answer_of(assignment: Assignment, choice: str = "left") -> Answer:
    return Answer(token=str(assignment.token), choice=choice, client_response_ms=700)


def consented(study: Study, memory: JourneyMemory, **entry) -> None:
    assert journey_enter(study=study, memory=memory, **entry).step is Step.CONSENT
    assert journey_consent(study=study, memory=memory).step is Step.PRACTICE


def practise(study: Study, memory: JourneyMemory) -> None:
    """Answer the study's one practice trial."""
    shown = journey_practice(study=study, memory=memory)
    assert journey_practice(study=study, memory=memory, answer=answer_of(shown.assignment)).last


# ------------------------------------------------------------------------------
# The whole way, in order
# ------------------------------------------------------------------------------
def test_entry_consent_practice_trials_break_and_done_in_order(db):
    study = opened(items=8, quota=4, practice=2)
    study.break_every = 2
    study.save()
    memory = session(study)

    entered = journey_enter(study=study, memory=memory, prolific=prolific(study_id="st", session_id="se"))
    assert entered.step is Step.CONSENT
    assert memory.annotator_id == entered.annotator.pk
    participation = Participation.objects.get(study=study, annotator=entered.annotator)
    assert (participation.prolific_study_id, participation.prolific_session_id) == ("st", "se")
    assert participation.browser_key == "browser-a" and participation.session_key == memory.session_key()
    # Nothing past consent answers before it.
    assert journey_practice(study=study, memory=memory).step is Step.ENTRY
    assert journey_trial(study=study, memory=memory).step is Step.ENTRY

    assert journey_consent(study=study, memory=memory).step is Step.PRACTICE
    assert Participation.objects.get(pk=participation.pk).consented_at is not None
    # The trials wait for practice.
    assert journey_trial(study=study, memory=memory).step is Step.PRACTICE

    first = journey_practice(study=study, memory=memory)
    assert first.step is Step.PRACTICE and first.assignment.trial.kind == "practice"
    # A reload shows the same practice trial, it does not skip ahead.
    assert journey_practice(study=study, memory=memory).assignment == first.assignment
    feedback = journey_practice(study=study, memory=memory, answer=answer_of(first.assignment, "right"))
    assert feedback.step is Step.FEEDBACK and not feedback.last
    assert feedback.judgment.choice == "right" and feedback.assignment == first.assignment
    second = journey_practice(study=study, memory=memory)
    assert second.step is Step.PRACTICE and second.assignment != first.assignment
    feedback = journey_practice(study=study, memory=memory, answer=answer_of(second.assignment))
    assert feedback.step is Step.FEEDBACK and feedback.last
    assert Participation.objects.get(pk=participation.pk).practice_finished_at is not None
    assert journey_practice(study=study, memory=memory).step is Step.TRIAL

    shown = journey_trial(study=study, memory=memory)
    assert shown.step is Step.TRIAL and shown.judged == 0 and shown.assignment.trial.kind != "practice"
    assert len(shown.upcoming) == 1  # issued ahead, for the page to preload
    after_one = journey_trial(study=study, memory=memory, answer=answer_of(shown.assignment), issue_with_answer=True)
    # The trial issued ahead is now the current one; none ahead of it, as a break follows.
    assert after_one.step is Step.TRIAL and after_one.judged == 1
    assert after_one.assignment == shown.upcoming[0] and after_one.upcoming == ()
    pause = journey_trial(study=study, memory=memory, answer=answer_of(after_one.assignment), issue_with_answer=True)
    assert pause.step is Step.BREAK and pause.judged == 2
    # No trial is open during the break, so no timeout runs down: the next is issued on Continue.
    open_trials = Assignment.objects.filter(study=study, judgment__isnull=True, released_at__isnull=True).exclude(
        trial__kind="practice"
    )
    assert not open_trials.exists()
    resumed = journey_trial(study=study, memory=memory)
    assert resumed.step is Step.TRIAL and resumed.judged == 2
    assert resumed.assignment in open_trials
    third = journey_trial(study=study, memory=memory, answer=answer_of(resumed.assignment), issue_with_answer=True)
    assert third.step is Step.TRIAL and third.judged == 3
    # The quota's last judgment is the end, not a break.
    end = journey_trial(study=study, memory=memory, answer=answer_of(third.assignment), issue_with_answer=True)
    assert end.step is Step.DONE
    assert memory.finished and Participation.objects.get(pk=participation.pk).finished_at is not None

    done = journey_done(study=study, memory=memory)
    assert done.step is Step.DONE and done.completion_code == "C0DE42"
    assert Judgment.objects.filter(assignment__annotator=entered.annotator).count() == 2 + 4
    assert_invariants(study)


def test_no_trial_is_issued_ahead_of_one_that_a_break_follows(db):
    study = opened(items=6, quota=4)
    study.break_every = 1
    study.save()
    memory = session(study)
    consented(study, memory)
    shown = journey_trial(study=study, memory=memory)
    assert shown.upcoming == ()
    assert Assignment.objects.filter(study=study).count() == 1


def test_an_answer_without_the_next_trial_asks_for_it_apart(db):
    study = opened(items=6, quota=4)
    memory = session(study)
    consented(study, memory)
    shown = journey_trial(study=study, memory=memory)
    recorded = journey_trial(study=study, memory=memory, answer=answer_of(shown.assignment))
    # TRIAL alone: the page redirects, and the GET after it shows the next trial.
    assert recorded.step is Step.TRIAL and recorded.assignment is None
    assert Judgment.objects.filter(assignment=shown.assignment).exists()
    following = journey_trial(study=study, memory=memory)
    assert following.judged == 1 and following.assignment not in (None, shown.assignment)


def test_an_invite_link_ends_without_a_completion_code(db):
    study = opened(items=2, generators=1, quota=1)
    memory = session(study)
    consented(study, memory)
    shown = journey_trial(study=study, memory=memory)
    assert journey_done(study=study, memory=memory).step is Step.ENTRY  # not finished yet
    assert journey_trial(study=study, memory=memory, answer=answer_of(shown.assignment)).step is Step.TRIAL
    # The quota is met: the trial page asked for after the answer is the end.
    assert journey_trial(study=study, memory=memory).step is Step.DONE
    done = journey_done(study=study, memory=memory)
    assert done.step is Step.DONE and done.completion_code == ""
    assert Annotator.objects.get().source == Annotator.Source.INVITE


# ------------------------------------------------------------------------------
# Answers that are not recorded
# ------------------------------------------------------------------------------
@pytest.mark.parametrize("issue_with_answer", [False, True])
def test_a_refused_answer_shows_the_same_trial_with_the_reason(db, issue_with_answer):
    study = opened(items=6, quota=4)
    memory, other = session(study), session(study)
    consented(study, memory)
    consented(study, other)
    shown = journey_trial(study=study, memory=memory)
    theirs = journey_trial(study=study, memory=other).assignment
    for answer, refusal in (
        (answer_of(shown.assignment, "middle"), ValueError),
        (Answer(token="not-a-token", choice="left"), AssignmentUnknown),
        (answer_of(theirs), AssignmentNotYours),
    ):
        again = journey_trial(study=study, memory=memory, answer=answer, issue_with_answer=issue_with_answer)
        assert again.step is Step.TRIAL and again.assignment == shown.assignment and again.judged == 0
        assert isinstance(again.refused, refusal)
    assert not Judgment.objects.exists()


def test_practice_gives_no_feedback_on_a_study_trial(db):
    study = opened(items=6, quota=4, practice=1)
    memory = session(study)
    consented(study, memory)
    practice = journey_practice(study=study, memory=memory).assignment
    stranger = session(study)
    consented(study, stranger, prolific=prolific("another", "browser-b"))
    practise(study, stranger)
    study_trial = journey_trial(study=study, memory=stranger).assignment
    refused = journey_practice(study=study, memory=memory, answer=answer_of(study_trial))
    # Feedback would reveal the sides: the practice trial comes back, with the reason.
    assert refused.step is Step.PRACTICE and refused.assignment == practice
    assert isinstance(refused.refused, AssignmentUnknown)
    assert not Judgment.objects.filter(assignment=study_trial).exists()


# ------------------------------------------------------------------------------
# Studies that take nobody (more)
# ------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [Study.Status.DRAFT, Study.Status.CLOSED])
def test_a_study_that_is_not_open_creates_nothing(db, status):
    study = opened()
    Study.objects.filter(pk=study.pk).update(status=status)
    study.refresh_from_db()
    memory = session(study)
    assert journey_enter(study=study, memory=memory, prolific=prolific()).step is Step.NOT_OPEN
    assert journey_enter(study=study, memory=memory).step is Step.NOT_OPEN
    assert not Annotator.objects.exists() and not Participation.objects.exists()
    assert memory.annotator_id is None


def test_a_study_closed_midway_sends_the_annotator_back_to_the_entry(db):
    study = opened(items=6, quota=4, practice=1)
    memory, practised = session(study), session(study)
    consented(study, memory)
    consented(study, practised, prolific=prolific())
    practise(study, practised)
    shown = journey_trial(study=study, memory=practised)
    study = study_close(study=study)
    assert journey_practice(study=study, memory=memory).step is Step.ENTRY
    assert journey_trial(study=study, memory=practised).step is Step.ENTRY
    # An answer on a trial already shown is still recorded; only the next trial is refused.
    assert journey_trial(study=study, memory=practised, answer=answer_of(shown.assignment),
                         issue_with_answer=True).step is Step.ENTRY
    assert Judgment.objects.filter(assignment=shown.assignment).exists()
    assert not Participation.objects.filter(finished_at__isnull=False).exists()


def test_a_full_study_turns_a_newcomer_away_but_not_one_who_started(db):
    study = opened(items=2, generators=1, k=1, quota=5)
    first = session(study)
    consented(study, first)
    # Both trials are taken: the current one and the one issued ahead.
    shown = journey_trial(study=study, memory=first)
    newcomer = session(study)
    full = journey_enter(study=study, memory=newcomer)
    assert full.step is Step.FULL
    assert journey_enter(study=study, memory=first).step is Step.PRACTICE
    assert journey_trial(study=study, memory=first).assignment == shown.assignment


def test_a_study_that_fills_after_consent_is_full_on_the_trial_page_and_stamps_no_finish(db):
    study = opened(items=2, generators=1, k=1, quota=5)
    newcomer, first = session(study), session(study)
    consented(study, newcomer)
    consented(study, first)
    journey_trial(study=study, memory=first)
    assert journey_trial(study=study, memory=newcomer).step is Step.FULL
    assert not newcomer.finished
    assert not Participation.objects.filter(finished_at__isnull=False).exists()


# ------------------------------------------------------------------------------
# Who the annotator is
# ------------------------------------------------------------------------------
def test_a_prolific_id_taken_by_another_browser_gets_nothing(db):
    study = opened()
    owner = session(study)
    consented(study, owner, prolific=prolific(session_id="se1"))
    shown = journey_trial(study=study, memory=owner)
    thief = session(study)
    taken = journey_enter(study=study, memory=thief, prolific=prolific(browser="browser-b", session_id="forged"))
    assert taken.step is Step.TAKEN and taken.annotator is None
    assert thief.annotator_id is None
    assert journey_trial(study=study, memory=thief).step is Step.ENTRY
    participation = Participation.objects.get()
    assert participation.browser_key == "browser-a" and participation.prolific_session_id == "se1"
    assert Annotator.objects.count() == 1
    assert journey_trial(study=study, memory=owner).assignment == shown.assignment


def test_a_second_entry_resumes_where_the_first_stopped(db):
    study = opened(items=6, quota=4, practice=1)
    first = session(study)
    consented(study, first, prolific=prolific(session_id="se1"))
    practise(study, first)
    shown = journey_trial(study=study, memory=first)
    journey_trial(study=study, memory=first, answer=answer_of(shown.assignment), issue_with_answer=True)
    current = journey_trial(study=study, memory=first)

    # The same browser, its session gone: consent and practice come from the database.
    later = session(study)
    again = journey_enter(study=study, memory=later, prolific=prolific(session_id="se2"))
    assert again.step is Step.PRACTICE and again.annotator.pk == first.annotator_id
    assert later.consented
    assert journey_practice(study=study, memory=later).step is Step.TRIAL
    resumed = journey_trial(study=study, memory=later)
    assert resumed.assignment == current.assignment and resumed.judged == 1
    assert Participation.objects.get().prolific_session_id == "se2"
    assert Annotator.objects.count() == 1

    # An invite link's annotator comes back through the session it has.
    anonymous = session(study)
    consented(study, anonymous)
    assert journey_enter(study=study, memory=anonymous).step is Step.PRACTICE
    assert Annotator.objects.filter(source=Annotator.Source.INVITE).count() == 1


def test_another_prolific_id_in_the_same_browser_does_not_inherit_consent_or_practice(db):
    study = opened(items=6, quota=4, practice=1)
    memory = session(study)
    consented(study, memory, prolific=prolific())
    practise(study, memory)
    assert journey_trial(study=study, memory=memory).step is Step.TRIAL
    switched = journey_enter(study=study, memory=memory, prolific=prolific("someone-else"))
    assert switched.step is Step.CONSENT and memory.annotator_id == switched.annotator.pk
    assert journey_consent(study=study, memory=memory).step is Step.PRACTICE
    assert journey_trial(study=study, memory=memory).step is Step.PRACTICE


def test_a_new_annotator_does_not_inherit_the_consent_of_a_deleted_one(db):
    study = opened(items=6, quota=4)
    memory = session(study)
    consented(study, memory)
    Participation.objects.filter(annotator_id=memory.annotator_id).delete()
    Annotator.objects.filter(pk=memory.annotator_id).delete()
    again = journey_enter(study=study, memory=memory)
    assert again.step is Step.CONSENT and memory.annotator_id == again.annotator.pk


def test_an_invited_account_judges_as_itself_unless_a_prolific_link_says_otherwise(db):
    study = opened()
    alice = account("alice")
    (invited,) = participation_invite(study=study, names=["alice"])
    memory = session(study)
    entered = journey_enter(study=study, memory=memory, user=alice)
    assert entered.step is Step.CONSENT and entered.annotator == invited.annotator
    assert Annotator.objects.count() == 1
    # Prolific pays by its own id, so its link wins over the signed-in account.
    by_link = journey_enter(study=study, memory=memory, prolific=prolific(), user=alice)
    assert by_link.annotator.source == Annotator.Source.PROLIFIC and memory.annotator_id == by_link.annotator.pk


def test_the_trial_step_reads_no_annotator_row(db):
    """The hot path: the session remembers the annotator's key, consent and practice."""
    study = opened(items=6, quota=4)
    memory = session(study)
    consented(study, memory, prolific=prolific())
    shown = journey_trial(study=study, memory=memory)
    table = Annotator._meta.db_table
    with CaptureQueriesContext(connection) as got:
        journey_trial(study=study, memory=memory)
        journey_trial(study=study, memory=memory, answer=answer_of(shown.assignment), issue_with_answer=True)
    assert got.captured_queries
    assert not [q["sql"] for q in got.captured_queries if f'FROM "{table}"' in q["sql"]]
