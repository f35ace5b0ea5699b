"""The deterministic unsupported-claims check, one row per rule: what it flags and what it lets
through."""

from __future__ import annotations

import pytest

from brandvoice.datagen.claims import unsupported_claims

GUIDELINES = (
    "## Facts we repeat\n\nReturns: 60 days, any reason, free return label. Repairs: free for life "
    "on our own gear, about two weeks by mail. Warranty: lifetime against defects. Shipping: free "
    "over $75, 3 to 5 business days."
)
RIDGELINE_Q = "Is the Ridgeline 40 pack waterproof?"
RIDGELINE_REF = "It's water-resistant, not waterproof. Use the rain cover in a downpour."

# (reply, sources, expected flagged claim kinds: "" when nothing should be flagged)
CASES: list[tuple[str, list[str], str]] = [
    # the examples
    (
        "Yes, the Ridgeline 40 pack is waterproof for all rain and snow.",
        [RIDGELINE_Q, RIDGELINE_REF],
        "flip",
    ),
    (
        "So sorry it's late. We'll send you a free tent for life.",
        ["Where is my tent?", "Sorry it's late. It ships Friday.", GUIDELINES],
        "promise",
    ),
    (
        "It's water-resistant, not waterproof, so pack a rain cover.",
        [RIDGELINE_Q, RIDGELINE_REF],
        "",
    ),
    # quantities: normalised forms agree
    ("You have sixty days to send it back.", ["Returns within 60 days."], ""),
    ("We offer a 60-day return window.", ["You have sixty days to return it."], ""),
    ("You have 90 days to send it back.", ["Returns within 60 days."], "quantity"),
    ("It costs $20.", ["The strap is 20 dollars."], ""),
    ("It costs 20 dollars.", ["The strap is $20.00."], ""),
    ("It costs $25.", ["The strap is $20."], "quantity"),
    ("Members get 10% back.", ["Members earn 10 percent back."], ""),
    ("Members get 15 percent back.", ["Members earn 10% back."], "quantity"),
    ("Repairs take about two weeks.", ["Repairs take 14 days."], ""),
    ("Repairs take about three weeks.", ["Repairs take about two weeks."], "quantity"),
    ("It ships March 3.", ["Ships on the 3rd of March."], ""),
    ("It ships March 4.", ["Ships on the 3rd of March."], "quantity"),
    ("It arrives by Friday.", ["If it hasn't reached you by Friday, we'll send a new one."], ""),
    (
        "It arrives by Monday.",
        ["If it hasn't reached you by Friday, we'll send a new one."],
        "quantity",
    ),
    ("Our 2026-05-01 sale starts soon.", ["The sale starts 2026-05-01."], ""),
    ("The Ridgeline 40 has 3 pockets.", ["About the Ridgeline 40?", "It has three pockets."], ""),
    (
        "The Ridgeline 40 has 4 pockets.",
        ["About the Ridgeline 40?", "It has three pockets."],
        "quantity",
    ),
    ("Free shipping over $75, in 3 to 5 business days.", [GUIDELINES], ""),
    ("Free shipping over $50.", [GUIDELINES], "quantity"),
    ("This is the one I'd pick, and one more tip: dry it in shade.", ["Dry it in the shade."], ""),
    # promises and policies
    ("Repairs are free for life on our own gear.", [GUIDELINES], ""),
    ("We'll refund you, no questions asked.", ["We'll refund you within five days."], "promise"),
    ("We'll refund you right away.", ["We'll refund you within five business days."], ""),
    ("We guarantee it will last ten years.", ["It is built to last."], "promise quantity"),
    ("You'll get 20% off your next order.", ["Thanks for the order."], "promise quantity"),
    ("Enjoy a discount on your next order.", ["Thanks for the order."], "promise"),
    ("We'll send a replacement today.", ["We'll send a replacement by express today."], ""),
    ("We'll send a replacement today.", ["Send us a photo and we'll take a look."], "promise"),
    ("It has a lifetime warranty against defects.", [GUIDELINES], ""),
    ("The stove has a 5-year warranty.", ["The stove is sold as is."], "promise quantity"),
    ("Feel free to send a photo.", ["Send us a photo."], ""),
    ("We'll ship a new one for free.", ["We'll ship a new one at no cost to you."], ""),
    ("We'll ship a new one for free.", ["We'll ship a new one at cost."], "promise"),
    ("We'll ship a free replacement.", ["We'll send you a new one at no charge."], ""),
    ("Exchanges are free within 60 days.", [GUIDELINES], ""),
    ("We can fix the whole bag for free instead.", [GUIDELINES], ""),
    ("You'll get a free sleeping bag.", [GUIDELINES], "promise"),
    ("Buy one and get the second one for free at the store.", [GUIDELINES], "promise"),
    ("Repairs are free of charge.", [GUIDELINES], ""),
    ("You get free express shipping.", [GUIDELINES], "promise"),
    # flips of product attributes
    ("The Trailhead jacket is waterproof.", ["The Trailhead jacket is waterproof."], ""),
    ("The jacket isn't waterproof.", ["The jacket is fully waterproof."], "flip"),
    ("The Ember stove is in stock.", ["The Ember stove is out of stock until May."], "flip"),
    ("Sorry, the Ember stove is out of stock.", ["The Ember stove is in stock."], "flip"),
    ("The rain cover is free with the pack.", ["The rain cover costs extra, $15."], "flip promise"),
    ("We'll send a free return label.", ["Free return label.", "The card you paid with."], ""),
    ("Sorry, we can't ship to the UK yet.", ["They ask if we can ship to the UK."], ""),
    ("You can wash it in the machine.", ["You can't wash it in the machine."], "flip"),
    ("You cannot wash it in the machine.", ["You can wash it on cold."], "flip"),
    ("You can wash it on cold.", ["Can I wash it?", "You can wash it on cold."], ""),
    ("The pack is not waterproof.", ["Is the pack waterproof?", "No, it's water-resistant."], ""),
]


@pytest.mark.parametrize(("reply", "sources", "expected"), CASES)
def test_unsupported_claims_table(reply: str, sources: list[str], expected: str) -> None:
    claims = unsupported_claims(reply, sources)

    assert sorted({c.kind for c in claims}) == sorted(expected.split()), claims
    assert all(c.reason and c.text for c in claims)


def test_the_claims_say_what_and_why():
    [flip] = unsupported_claims(
        "Yes, the Ridgeline 40 pack is waterproof for all rain and snow.",
        [RIDGELINE_Q, RIDGELINE_REF],
    )
    assert flip.text == "waterproof"
    assert flip.reason == "the reply says 'waterproof' where a source says 'not waterproof'"

    [tent] = unsupported_claims("We'll send you a free tent for life.", [GUIDELINES])
    assert tent.text == "free tent for life."
    assert tent.reason == "no source sentence promises 'free' + 'tent'"

    [price] = unsupported_claims("It costs $25.", ["The strap is $20."])
    assert price.reason == "the price '$25' is in no source"


def test_without_sources_every_claim_is_unsupported_and_a_plain_reply_has_none():
    assert {c.kind for c in unsupported_claims("A free hat, 30 days.", [])} == {
        "promise",
        "quantity",
    }
    assert unsupported_claims("Thanks for writing. Happy trails! 🌲", []) == []
