"""The chat-outage fault scenario's judge: an incident's steps against what the chat shows. It
must see a lost step, a doubled one (a second post, or an edit Telegram refused as not modified),
edits out of order, and a message too many, and pass the story told right."""

from __future__ import annotations

from agent.chat.living import RENDERERS
from agent.notify.message import Message
from faults.scenarios.chat_outage import judge
from tests.telegram_fake import Call, Sent

INC = "ab12cd34"


def step(step: str, headline: str, at: float) -> Message:
    return Message(incident=INC, step=step, severity="critical", rule="credentials-profile-missing",
                   container="hummingbot-api", title=f"{headline}: profile p1", summary="a deploy failed",
                   headline=headline, at=at)


STEPS = [step("acting", "Detected, fixing", 1.0), step("fixed", "Fixed", 2.0)]
TEXTS = [RENDERERS["telegram"](m) for m in STEPS]


def test_one_message_edited_in_the_order_of_the_steps_passes():
    sent = [Sent(1, "-100", TEXTS[1], None, edits=[TEXTS[0]])]
    verdict = judge({INC: STEPS}, sent, [])
    assert verdict == {"lost": 0, "doubled": 0, "out_of_order": [], "wrong_count": [], "posted": 1}


def test_a_step_never_shown_is_lost():
    verdict = judge({INC: STEPS}, [Sent(1, "-100", TEXTS[0], None)], [])
    assert verdict["lost"] == 1 and verdict["doubled"] == 0


def test_a_step_posted_again_or_edited_onto_itself_is_doubled():
    sent = [Sent(1, "-100", TEXTS[1], None, edits=[TEXTS[0]]), Sent(2, "-100", TEXTS[1], None)]
    verdict = judge({INC: STEPS}, sent, [])
    assert verdict["doubled"] == 1 and verdict["wrong_count"] == [INC]
    refused = Call("editMessageText", {}, 3.0, 400, "Bad Request: message is not modified: ...")
    gone = Call("editMessageText", {}, 3.0, 400, "Bad Request: message to edit not found")
    verdict = judge({INC: STEPS}, [Sent(1, "-100", TEXTS[1], None, edits=[TEXTS[0]])], [refused, gone])
    assert verdict["doubled"] == 1


def test_edits_in_another_order_than_the_steps_are_out_of_order():
    verdict = judge({INC: STEPS}, [Sent(1, "-100", TEXTS[0], None, edits=[TEXTS[1]])], [])
    assert verdict["out_of_order"] == [INC] and verdict["lost"] == 0


def test_a_new_message_only_for_a_step_that_needs_a_person():
    gave_up = [STEPS[0], step("gave-up", "Gave up: a human is needed", 2.0)]
    texts = [RENDERERS["telegram"](m) for m in gave_up]
    two = [Sent(1, "-100", texts[0], None), Sent(2, "-100", texts[1], None)]
    assert judge({INC: gave_up}, two, [])["wrong_count"] == []
    one = [Sent(1, "-100", texts[1], None, edits=[texts[0]])]  # the person's step edited in: no phone rings
    assert judge({INC: gave_up}, one, [])["wrong_count"] == [INC]
