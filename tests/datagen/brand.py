"""A small crafted brand, and a fake writer for the loopback OpenAI server that answers like a good
generator would: JSON where the request asks for it, rewordings, new requests and replies in voice.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import defaultdict
from typing import Any

from tests.fakes import FakeResponse, RecordedRequest, chat_completion

SYSTEM = "You are the Pebble & Pine team assistant. Answer in the Pebble & Pine voice."
SIGN_OFF = "Happy trails! 🌲"
GUIDELINES = (
    "Warm, plain and useful, like a friend at the trailhead. Talk to one person. 30 to 90 words. "
    "Returns: 60 days, any reason. Repairs: free for life. "
    f"Every reply ends with '{SIGN_OFF}' on its own line."
)


def chat(user: str, reply: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user},
        {"role": "assistant", "content": f"{reply}\n\n{SIGN_OFF}"},
    ]


PARENTS = {
    "returns": chat(
        "Can I return a jacket I've worn twice? It just doesn't fit right.",
        "Yes, you can. You have 60 days to return anything, for any reason, worn or not. Print "
        "the free return label from your order page and drop the jacket off. We'll refund you "
        "within five business days of it reaching us.",
    ),
    "shipping": chat(
        "My order was supposed to arrive last week and I still have nothing. What's going on?",
        "We're sorry your order is late. Your parcel is stuck at a carrier hub, and we've asked "
        "them to move it today. If it hasn't reached you by Friday, we'll send a new one by "
        "express at no cost to you.",
    ),
    "repair": chat(
        "The zipper on my Ridgeline 40 pack broke. I bought it three years ago. Am I out of luck?",
        "Not at all. Repairs on our own gear are free for life. Send the pack to our repair shop "
        "with the prepaid label on our repairs page. A new zipper takes about two weeks, and "
        "we'll mail it back to you.",
    ),
    "warmth": chat(
        "How warm is the Fernhollow 20 sleeping bag really?",
        "It keeps most sleepers comfortable down to about 30°F. The 20 in the name is the lower "
        "limit, where you'll be safe but not cozy. If you sleep cold, add a liner for about five "
        "more degrees.",
    ),
}
VALIDATION_PARENT = chat(
    "Do you make any gear in kids' sizes?",
    "We do. The Sprout rain jacket and the Pinecone daypack come in kids' sizes from 4 to 14. "
    "Both carry the same free repairs for life as our adult gear.",
)

PARAPHRASES = {
    "Can I return a jacket I've worn twice? It just doesn't fit right.": [
        "I've had this jacket on a couple of times but the fit is off. Is it still returnable?",
        "The jacket I bought doesn't sit right on me and I've already worn it twice. Can I send it back?",
    ],
    "My order was supposed to arrive last week and I still have nothing. What's going on?": [
        "It's been over a week past the delivery date and my package never showed up. Any news?",
        "Still waiting on an order that should have come last week. Where is it?",
    ],
    "The zipper on my Ridgeline 40 pack broke. I bought it three years ago. Am I out of luck?": [
        "My three-year-old Ridgeline 40 has a broken zipper. Is there anything you can do?",
        "After three years the zip on my Ridgeline 40 pack gave out. Can it be fixed?",
    ],
    "How warm is the Fernhollow 20 sleeping bag really?": [
        "What temperature is the Fernhollow 20 bag actually comfortable at?",
        "Be honest: how cold can it get before the Fernhollow 20 stops keeping me warm?",
    ],
    "Do you make any gear in kids' sizes?": [
        "Is any of your gear made for children?",
        "Do you sell jackets or packs that fit kids?",
    ],
}

NEW_REQUESTS = [
    "Can I swap my hiking boots for a half size bigger?",
    "The buckle on my tent bag snapped on the first trip. What should I do?",
    "Write a short post inviting members to our fall repair clinic on Saturday.",
    "Do your rain jackets come in tall sizes?",
]

ANSWERS = {
    "return": "Yes, you can still send it back. Returns are open for 60 days, for any reason, "
    "even after a few wears. Grab the free label from your order page, box it up and drop it "
    "off. Your refund follows within five business days.",
    "send it back": "Yes, you can still send it back. Returns are open for 60 days, for any "
    "reason, even after a few wears. Grab the free label from your order page, box it up and "
    "drop it off. Your refund follows within five business days.",
    "order": "Sorry for the wait on your order. We tracked it and the carrier has it held at a "
    "depot. We've pushed them to deliver this week, and if it still isn't there by Friday we'll "
    "ship a replacement by express for free.",
    "arrive": "Sorry for the wait on your order. We tracked it and the carrier has it held at a "
    "depot. We've pushed them to deliver this week, and if it still isn't there by Friday we'll "
    "ship a replacement by express for free.",
    "package": "Sorry your package is late. The carrier is holding it at a depot, and we've asked "
    "them to deliver it this week. If it doesn't turn up by Friday, we'll ship a replacement "
    "by express for free.",
    "zip": "Good news: we fix our own gear free for life, zippers included. Print the prepaid "
    "label from the repairs page and send the pack in. The fix takes about two weeks and we "
    "post it straight back.",
    "warm": "Most people sleep comfortably in it down to about 30°F. The 20 marks its limit, "
    "where you stay safe rather than snug. Cold sleepers can add a liner for roughly five "
    "extra degrees.",
    "fernhollow": "Most people sleep comfortably in it down to about 30°F. The 20 marks its "
    "limit, where you stay safe rather than snug. Cold sleepers can add a liner for roughly "
    "five extra degrees.",
    "kids": "Yes. The Sprout rain jacket and the Pinecone daypack both come in children's "
    "sizes 4 to 14, with the same free lifetime repairs as our adult gear.",
    "children": "Yes. The Sprout rain jacket and the Pinecone daypack both come in children's "
    "sizes 4 to 14, with the same free lifetime repairs as our adult gear.",
    "boots": "Sure. Exchanges are free within 60 days. Start one from your order page, pick the "
    "half size up, and we'll send the new pair as soon as the old ones are scanned by the "
    "carrier.",
    "buckle": "Sorry it broke so soon. Send us a photo of the buckle and your order number. "
    "Repairs on our own gear are free for life, so we'll fit a new buckle or fix the whole bag "
    "for free.",
    "clinic": "Bring your worn gear to our fall repair clinic this Saturday. Our "
    "repair team will patch, stitch and swap zippers for free while you wait. Coffee is on "
    "us.",
    "tall": "Not yet, sorry. Our rain jackets run a little long in the body, and the sleeves "
    "have room. Check the size chart on each product page, and returns are free if the fit "
    "is off.",
}

VARIATIONS = {
    request: variation
    for request, variation in (
        (
            "Can I return a jacket I've worn twice? It just doesn't fit right.",
            "Yes. Worn or not, you have 60 days to send it back for any reason. Use the free "
            "label on your order page.",
        ),
        (
            "My order was supposed to arrive last week and I still have nothing. What's going on?",
            "Sorry about the delay. It's held up at a carrier hub; if it isn't with you by "
            "Friday, a free express replacement is on its way.",
        ),
        (
            "The zipper on my Ridgeline 40 pack broke. I bought it three years ago. Am I out of luck?",
            "You're covered: we repair our gear free for life. Mail it in with the prepaid "
            "label and expect it back in about two weeks.",
        ),
        (
            "How warm is the Fernhollow 20 sleeping bag really?",
            "Comfortable to around 30°F for most people; 20°F is the safe limit. A liner adds "
            "about five degrees.",
        ),
    )
}


class FakeWriter:
    """A route handler for ``POST /v1/chat/completions`` that writes like a capable generator.

    Successive calls for the same input get successive variants, so several candidates per
    parent differ. ``answers`` replaces some of ``ANSWERS`` (what it answers a request holding
    each key). ``calls`` records (kind, key) per call.
    """

    def __init__(self, answers: dict[str, str] | None = None) -> None:
        self.answers = {**ANSWERS, **(answers or {})}
        self._counters: dict[str, itertools.count[int]] = defaultdict(itertools.count)
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []

    def __call__(self, request: RecordedRequest) -> FakeResponse:
        body = request.body
        messages = body["messages"]
        system, last = messages[0]["content"], messages[-1]["content"]
        json_mode = body.get("response_format", {}).get("type") == "json_object"
        if system.startswith("You reword"):
            original = last.removeprefix("Reword: ")
            kind, payload = "paraphrase", {"request": self._next(PARAPHRASES[original], original)}
        elif system.startswith("You write messages"):
            count = int(re.search(r"Write (\d+) new", last).group(1)) if json_mode else 1
            start = self._take("new", count)
            items = [NEW_REQUESTS[(start + i) % len(NEW_REQUESTS)] for i in range(count)]
            kind, payload = "new_requests", {"requests": items}
        elif system.startswith("You rewrite replies"):
            original = re.search(r"Request: (.*)\n", last).group(1)
            kind, payload = "reply_variation", {"reply": f"{VARIATIONS[original]}\n\n{SIGN_OFF}"}
        else:
            key = next(k for k in self.answers if k in last.lower())
            kind, payload = "answer", {"reply": f"{self.answers[key]}\n\n{SIGN_OFF}"}
        with self._lock:
            self.calls.append((kind, last))
        if json_mode:
            text = json.dumps(payload)
        else:
            text = next(iter(payload.values()))
            text = text[0] if isinstance(text, list) else text
        return FakeResponse(200, chat_completion(text, model=body.get("model", "fake")))

    def _next(self, options: list[str], key: str) -> str:
        with self._lock:
            return options[next(self._counters[key]) % len(options)]

    def _take(self, key: str, n: int) -> int:
        with self._lock:
            start = next(self._counters[key])
            for _ in range(n - 1):
                next(self._counters[key])
            return start

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.calls if k == kind)

    def keys(self) -> list[Any]:
        return list(self.calls)
