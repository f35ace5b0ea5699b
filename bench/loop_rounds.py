"""Does the loop improve the production model turn after turn? A team simulated over several rounds.

On one brand set (default ``pebble_pine``), each round approves more of ``train.jsonl`` (a share of
the new conversations arrives as corrections: the production model's own reply is recorded as an
interaction, rejected, and the reference is submitted in its place, so the pair is kept), then runs
the scheduled pipeline exactly as ``brandvoice worker`` does: a scheduled run is enqueued, claimed
and executed by the worker ``make_worker`` builds from settings (snapshot, generate, train with
``TrainConfig()`` defaults, evaluate against production, register, auto-promote when the verdict
recommends it). The store is a fresh SQLite file holding the brand's knowledge files, where it has
them (``knowledge/`` in its directory; ``pebble_pine`` is the packaged sample brand and uses its
files), so training, evaluation and the claims check see retrieved knowledge as in production;
``--no-knowledge`` runs without. ``LOCAL_SYNTHETIC`` stays at its default. Between rounds the bot
serves requests no one approves (three of every four of the brand's ``fact_probes.jsonl``
questions, a share per round; ``--no-traffic`` serves none), which the evaluation's claims check
answers beside its validation prompts. The fourth of every four is held out: never served.

The pipeline never sees ``test.jsonl``. For every round the bench scores, on that test split,
production before and after, and the candidate: greedy replies as the bot serves them (the
knowledge and approved replies retrieved for each test prompt at that round, its
``REPLY_MAX_TOKENS`` budget), MiniLM cosine to the references and the sign-off rate
(``trainer/voice_probe.py``). Recorded per round: test similarity and sign-off of production, the
test-split win rate of the new production over the previous one (per prompt, closer to the
reference wins, ties within 0.01 count half), the pipeline's own win rate on its validation split,
the unsupported claims of the test replies (the pipeline's deterministic check against each reply's
reference, its prompt, the knowledge files and the guidelines: the sources the pipeline allows; the
rate against reference and prompt alone is recorded beside it) and of the replies to the held-out
probes (against the prompt and those sources), the promote decision, whether it was right (a
promoted candidate must not score below the production it replaced by more than the seed noise,
nor make clearly more unsupported claims by the pipeline's own rule, on the test split and the
held-out probes together; a refused one must beat it by no more than the noise, or make clearly
more claims there), and the run's wall time
(training and evaluation) with its CPU time beside it (on a shared machine, CPU seconds / threads
is what the run would take alone).

Seed noise: the last round's training files (its snapshot with the context the pipeline retrieved
for it, where it had knowledge) are trained again with ``--noise-seeds`` other seeds; the noise is
the spread (max - min) of their test similarity together with the pipeline's adapter.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/loop_rounds.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from bench_record import write_result
from brand_sets import BRANDS, read_jsonl, served_greedy_replies
from rich.console import Console

from brandvoice.bot.backends import Backends
from brandvoice.bot.cli.logs import configure_logging
from brandvoice.bot.knowledge import KnowledgeService, add_documents, read_documents
from brandvoice.bot.services import make_worker, pipeline_config
from brandvoice.bot.settings import Settings
from brandvoice.bot.worker import Worker
from brandvoice.datagen.claims import Claim, unsupported_claims
from brandvoice.datagen.guidelines import claim_sources
from brandvoice.inference.chat import Sampling
from brandvoice.inference.embeddings import cosine_similarity, embed_texts
from brandvoice.inference.local_chat import LocalChat
from brandvoice.inference.tokens import count_chat_tokens_batch
from brandvoice.samples import sample_knowledge_paths
from brandvoice.store.db import make_engine, session_scope, upgrade
from brandvoice.store.examples import NewExample, add_examples
from brandvoice.store.feedback import record_interaction, submit_correction
from brandvoice.store.models import DatasetSnapshot, ExampleSource, ModelVersion, TrainingRun
from brandvoice.store.runs import claim_next_run, enqueue_scheduled_run
from brandvoice.trainer.config import TrainConfig
from brandvoice.trainer.context_data import CONTEXT_DIR
from brandvoice.trainer.eval_report import ClaimRate, EvalReport, UnsupportedClaims
from brandvoice.trainer.evaluate import (
    CLAIMS_METHOD,
    EvalConfig,
    claim_rate,
    claims_worse,
    pairwise_by_similarity,
)
from brandvoice.trainer.lora import train_lora
from brandvoice.trainer.pipeline import run_dir
from brandvoice.trainer.registry import get_version, promoted_version
from brandvoice.trainer.voice_probe import VoiceProbe

Checked = tuple[list[str], list[list[Claim]]]
"""Replies and the unsupported claims found in each."""
TIE_MARGIN = 0.01
HELD_OUT_EVERY = 4
ROUND_LIMIT_S = 300.0
CURATOR = "U0CURATOR"


def cumulative_sizes(total: int, rounds: int, first: int) -> list[int]:
    """How many conversations are approved by the end of each round (even steps up to all)."""
    step = (total - first) / max(rounds - 1, 1)
    return [min(total, round(first + step * i)) for i in range(rounds)]


class TestSplit:
    """Greedy test-split replies of a version (cached by name) and their scores.

    With ``augment`` (retrieval as the bot serves a request) the prompts are re-rendered by
    ``refresh``: as replies are approved, retrieval finds them too, so each round scores its
    candidate and the production it would replace on the prompts the bot would build then."""

    def __init__(
        self,
        conversations: list[list[dict[str, Any]]],
        tokenizer: Any,
        sign_off: str | None,
        max_tokens: int,
        augment: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.conversations, self.tokenizer, self.sign_off = conversations, tokenizer, sign_off
        self.max_tokens = max_tokens
        self.augment = augment
        self.replies: dict[str, list[str]] = {}
        self.probe = self._probe()

    def _probe(self) -> VoiceProbe:
        served = [[*self.augment(c[:-1]), c[-1]] if self.augment else c for c in self.conversations]
        return VoiceProbe.from_conversations(served, self.tokenizer, sign_off=self.sign_off)

    def refresh(self) -> bool:
        """Re-render the prompts with today's retrieval (forgetting cached replies); False when
        there is no retrieval and nothing changes."""
        if self.augment is None:
            return False
        self.probe, self.replies = self._probe(), {}
        return True

    def score(self, name: str, adapter: str | None) -> dict[str, float]:
        if name not in self.replies:
            prompts = list(self.probe.prompts)
            self.replies[name] = served_greedy_replies(prompts, adapter, self.max_tokens)
        metrics = self.probe.score_replies(self.replies[name])
        return {k: round(v, 4) for k, v in metrics.items() if k != "voice_score"}

    def found(self, name: str, knowledge: list[str]) -> Checked:
        """Replies of ``name`` and the claims in each that neither their reference, their prompt
        nor ``knowledge`` supports: the pipeline's deterministic check, on replies it never saw."""
        pairs = zip(self.replies[name], self.probe.references, self.probe.prompts, strict=True)
        found = [unsupported_claims(r, [ref, prompt, *knowledge]) for r, ref, prompt in pairs]
        return self.replies[name], found

    def claims(self, name: str, knowledge: list[str]) -> ClaimRate:
        return claim_rate(*self.found(name, knowledge), examples=3)

    def win_rate(self, new: str, old: str) -> float:
        refs = list(self.probe.references)
        a = cosine_similarity(self.replies[new], refs)
        b = cosine_similarity(self.replies[old], refs)
        wins = pairwise_by_similarity(a, b, TIE_MARGIN)
        return round(sum(wins) / len(wins), 4)


class HeldOutProbes:
    """Fact questions the bot is never asked during the run (every ``HELD_OUT_EVERY``-th of the
    brand's probes): the gate checks claims on the served ones, and each decision is judged on
    these, which the pipeline never sees. Rendered with the round's retrieval, like the test
    split; replies cached by version name until ``refresh``."""

    def __init__(
        self,
        requests: list[list[dict[str, Any]]],
        tokenizer: Any,
        max_tokens: int,
        augment: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.requests, self.tokenizer, self.max_tokens = requests, tokenizer, max_tokens
        self.augment = augment
        self.replies: dict[str, list[str]] = {}
        self.prompts = self._render()

    def _render(self) -> list[str]:
        return [
            self.tokenizer.apply_chat_template(
                self.augment(r) if self.augment else r, tokenize=False, add_generation_prompt=True
            )
            for r in self.requests
        ]

    def refresh(self) -> None:
        if self.augment is not None:
            self.prompts, self.replies = self._render(), {}

    def found(self, name: str, adapter: str | None, knowledge: list[str]) -> Checked:
        """Replies of ``name`` and their claims that neither the prompt nor ``knowledge`` holds."""
        if name not in self.replies:
            self.replies[name] = (
                served_greedy_replies(self.prompts, adapter, self.max_tokens)
                if self.prompts
                else []
            )
        pairs = zip(self.replies[name], self.prompts, strict=True)
        return self.replies[name], [unsupported_claims(r, [p, *knowledge]) for r, p in pairs]


def claims_clearly_worse(new: Checked, old: Checked) -> bool:
    """The pipeline's rule (``EvalConfig``'s thresholds) applied to replies it never saw."""
    unseen = UnsupportedClaims(
        method=CLAIMS_METHOD.format(extra=", the given knowledge", served=""),
        production=claim_rate(*old, examples=0),
        candidate=claim_rate(*new, examples=0),
    )
    return claims_worse(unseen, EvalConfig()) is not None


def joined(*checked: Checked) -> Checked:
    return [r for c in checked for r in c[0]], [f for c in checked for f in c[1]]


def approve_round(
    engine: Any,
    rows: list[dict[str, Any]],
    correction_every: int,
    production: LocalChat,
) -> dict[str, int]:
    """Approve ``rows``: every ``correction_every``-th arrives as a correction of production's reply."""
    as_correction = [bool(correction_every) and i % correction_every == 0 for i in range(len(rows))]
    corrected = [r for r, c in zip(rows, as_correction, strict=True) if c]
    imported = [r for r, c in zip(rows, as_correction, strict=True) if not c]
    prompts = [r["messages"][:-1] for r in corrected]
    greedy = Sampling(temperature=0, max_tokens=96)
    rejected = [r.text for r in production.complete_batch(prompts, greedy)] if prompts else []
    with session_scope(engine) as session:
        rows_in = [NewExample(r["messages"], ExampleSource.IMPORT) for r in imported]
        add_examples(session, rows_in, count_chat_tokens_batch)
        for i, (row, reply) in enumerate(zip(corrected, rejected, strict=True)):
            interaction = record_interaction(
                session, channel="C0BENCH", message_ts=f"{time.time():.0f}.{i:06d}",
                prompt_messages=row["messages"][:-1], reply=reply,
            )  # fmt: skip
            submit_correction(
                session, interaction, row["messages"][-1]["content"], user=CURATOR,
                approved=True, count_tokens=count_chat_tokens_batch,
            )  # fmt: skip
    return {"imported": len(imported), "corrections": len(corrected)}


def serve_traffic(
    engine: Any, requests: list[list[dict[str, Any]]], production: LocalChat, round_number: int
) -> None:
    """The bot answers ``requests`` with the production model, as it does between retrains; no one
    approves these replies, so they are the served traffic the evaluation checks claims on."""
    greedy = Sampling(temperature=0, max_tokens=96)
    replies = [r.text for r in production.complete_batch(requests, greedy)] if requests else []
    with session_scope(engine) as session:
        for i, (prompt, reply) in enumerate(zip(requests, replies, strict=True)):
            record_interaction(
                session, channel="C0TRAFFIC", message_ts=f"{round_number}.{i:06d}",
                prompt_messages=prompt, reply=reply,
            )  # fmt: skip


def traffic_requests(brand: str, system: dict[str, Any] | None) -> list[list[dict[str, Any]]]:
    """Requests the simulated team asks the bot and never approves: the brand's
    ``fact_probes.jsonl`` questions where it has them (none of them is a training or test
    request)."""
    path = BRANDS / brand / "fact_probes.jsonl"
    if not path.exists():
        return []
    head = [system] if system else []
    return [[*head, {"role": "user", "content": row["question"]}] for row in read_jsonl(path)]


def run_scheduled(engine: Any, worker: Worker) -> TrainingRun:
    """One scheduled retrain, enqueued, claimed and executed by the worker the product builds."""
    enqueue_scheduled_run(engine, datetime.now(UTC), worker.backend)
    run = claim_next_run(engine, worker.name)
    assert run is not None and run.id is not None, "the scheduled run was not claimed"
    worker.execute_claimed(run.id)
    with session_scope(engine) as session:
        finished = session.get(TrainingRun, run.id)
        assert finished is not None
        session.expunge(finished)
        return finished


def version_named(engine: Any, name: str) -> ModelVersion:
    with session_scope(engine) as session:
        version = get_version(session, name)
        session.expunge(version)
        return version


def seed_noise(
    engine: Any,
    config: TrainConfig,
    run: TrainingRun,
    seeds: int,
    test: TestSplit,
    tmp: Path,
    artifacts: Path,
) -> dict[str, Any]:
    """Test similarity of the last round's data trained with other seeds, beside the pipeline's:
    the files the pipeline trained on (with their retrieved context, where it had knowledge)."""
    assert run.id is not None
    context = run_dir(artifacts, run.id) / CONTEXT_DIR
    if (context / "train.jsonl").exists():
        train_path, val_path = str(context / "train.jsonl"), str(context / "val.jsonl")
    else:
        with session_scope(engine) as session:
            snapshot = session.get(DatasetSnapshot, run.snapshot_id)
            assert snapshot is not None
            train_path, val_path = snapshot.train_path, snapshot.val_path
    scores = {}
    for seed in range(1, seeds + 1):
        out = tmp / f"seed-{seed}"
        train_lora(train_path, val_path, out, config.model_copy(update={"seed": seed}))
        scores[seed] = test.score(f"seed-{seed}", str(out))["voice_similarity"]
        print(f"  seed {seed}: test similarity {scores[seed]:.4f}", flush=True)
    return {"seeds": scores}


def knowledge_paths(brand: str) -> list[Path]:
    """The brand's knowledge files: ``knowledge/`` in its directory, or for ``pebble_pine`` the
    packaged sample brand's (it is that brand)."""
    folder = BRANDS / brand / "knowledge"
    if folder.is_dir():
        return sorted(p for p in folder.iterdir() if p.is_file())
    return list(sample_knowledge_paths()) if brand == "pebble_pine" else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brand", default="pebble_pine")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--first", type=int, default=24, help="conversations approved in round 1")
    parser.add_argument("--correction-every", type=int, default=4,
                        help="every Nth new conversation arrives as a correction (0: none)")  # fmt: skip
    parser.add_argument("--noise-seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-traffic", action="store_true",
                        help="serve no unapproved requests between rounds")  # fmt: skip
    parser.add_argument("--no-knowledge", action="store_true",
                        help="run without the brand's knowledge files, as before they existed")  # fmt: skip
    parser.add_argument("--max-steps", type=int, default=None,
                        help="override the defaults' step budget (a quick look; not the figures)")  # fmt: skip
    args = parser.parse_args()
    configure_logging(verbose=False, console=Console(stderr=True))
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    torch.set_num_threads(args.threads)
    directory = BRANDS / args.brand
    conversations = read_jsonl(directory / "train.jsonl")
    test_rows = [r["messages"] for r in read_jsonl(directory / "test.jsonl")]
    sign_off = json.loads((directory / "brand.json").read_text(encoding="utf-8")).get("sign_off")
    sizes = cumulative_sizes(len(conversations), args.rounds, args.first)
    tmp = Path(tempfile.mkdtemp(prefix="loop-rounds-"))
    knowledge_files = [] if args.no_knowledge else knowledge_paths(args.brand)
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'store.db'}", artifacts_dir=tmp / "artifacts",
        auto_promote=True, min_new_examples=1, knowledge_enabled=bool(knowledge_files),
        training_backend="local", device="cpu", _env_file=None,
    )  # fmt: skip
    engine = make_engine(settings.database_url)
    upgrade(engine)
    augment = None
    if knowledge_files:
        knowledge = KnowledgeService(settings, embed=embed_texts)
        add_documents(engine, read_documents(knowledge_files, settings), embed_texts, "bench")

        def augment(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return knowledge.augment_or_plain(engine, messages).messages

    overrides = {} if args.max_steps is None else {"max_steps": args.max_steps}
    worker = make_worker(
        settings, engine, backends=Backends(settings), log_reports=False, **overrides
    )
    train_config = pipeline_config(settings, **overrides).train
    with session_scope(engine) as session:
        knowledge_texts = claim_sources(session)
    first = conversations[0]["messages"][0]
    probes = traffic_requests(args.brand, first if first["role"] == "system" else None)
    held = [p for i, p in enumerate(probes) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    traffic = [] if args.no_traffic else [p for p in probes if p not in held]
    traffic_per_round = len(traffic) // args.rounds
    base = LocalChat(batch_size=8)
    test = TestSplit(test_rows, base.tokenizer, sign_off, settings.reply_max_tokens, augment)
    held_out = HeldOutProbes(held, base.tokenizer, settings.reply_max_tokens, augment)
    production, production_adapter = "base", None
    rounds: list[dict[str, Any]] = []
    result: dict[str, Any] = {"brand": args.brand, "sizes": sizes, "rounds": rounds,
                              "test_prompts": len(test_rows), "threads": args.threads,
                              "knowledge_files": [p.name for p in knowledge_files]}  # fmt: skip
    print(f"{args.brand}: approved after each round {sizes}; {len(test_rows)} test prompts; "
          f"{len(held)} fact probes held out, {len(traffic)} served")  # fmt: skip
    before = test.score(production, production_adapter)
    last_run: TrainingRun | None = None
    approved = 0
    for number, size in enumerate(sizes, start=1):
        responder = LocalChat(adapter=production_adapter, batch_size=8)
        arrived = approve_round(
            engine, conversations[approved:size], args.correction_every, responder
        )
        approved = size
        served = traffic[(number - 1) * traffic_per_round : number * traffic_per_round]
        serve_traffic(engine, served, responder, number)
        started, cpu_started = time.monotonic(), time.process_time()
        run = run_scheduled(engine, worker)
        wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
        if run.status.value != "succeeded":
            raise SystemExit(f"round {number}: run {run.id} {run.status.value}: {run.error}")
        last_run = run
        candidate = version_named(engine, run.metrics["version"])
        report = EvalReport.from_stored(candidate.eval)
        with session_scope(engine) as session:
            now = promoted_version(session)
            promoted = now is not None and now.name == candidate.name
        if test.refresh():
            before = test.score(production, production_adapter)
        held_out.refresh()
        cand_scores = test.score(candidate.name, candidate.adapter_path)
        previous, previous_adapter = production, production_adapter
        unseen = {
            name: joined(
                test.found(name, knowledge_texts), held_out.found(name, adapter, knowledge_texts)
            )
            for name, adapter in (
                (candidate.name, candidate.adapter_path),
                (previous, previous_adapter),
            )
        }
        if promoted:
            production, production_adapter = candidate.name, candidate.adapter_path
        after = test.score(production, production_adapter)
        rounds.append({
            "round": number, "approved": size, "arrived": arrived, "version": candidate.name,
            "training_steps": run.metrics["training"]["steps"],
            "training_seconds": run.metrics["training"]["seconds"],
            "run_wall_seconds": round(wall, 1), "run_cpu_seconds": round(cpu, 1),
            "under_5_min": wall <= ROUND_LIMIT_S,
            "validation_win_rate_vs_production": report.win_rate.vs_production,
            "recommend_promote": report.verdict.recommend_promote,
            "verdict_reasons": report.verdict.reasons, "promoted": promoted,
            "candidate_test": cand_scores, "production_before": before,
            "production_after": after, "production": production,
            "test_win_rate_vs_previous": test.win_rate(candidate.name, previous),
            "served_requests": len(served),
            "validation_claims": report.unsupported_claims.model_dump()
            if report.unsupported_claims else None,
            "candidate_test_claims": test.claims(candidate.name, knowledge_texts).describe(),
            "production_before_claims": test.claims(previous, knowledge_texts).describe(),
            "candidate_test_claims_beyond_prompt": test.claims(candidate.name, []).describe(),
            "production_before_claims_beyond_prompt": test.claims(previous, []).describe(),
            "held_out_probes": len(held),
            "candidate_probe_claims": claim_rate(
                *held_out.found(candidate.name, candidate.adapter_path, knowledge_texts), examples=3
            ).describe(),
            "production_before_probe_claims": claim_rate(
                *held_out.found(previous, previous_adapter, knowledge_texts), examples=3
            ).describe(),
            "candidate_claims_clearly_worse": claims_clearly_worse(
                unseen[candidate.name], unseen[previous]
            ),
        })  # fmt: skip
        r = rounds[-1]
        print(
            f"round {number}: {size} approved ({arrived['corrections']} as corrections); "
            f"{candidate.name} {r['training_steps']} steps, run {wall:.0f} s; "
            f"candidate test {cand_scores['voice_similarity']:.4f}, production "
            f"{before['voice_similarity']:.4f} -> {after['voice_similarity']:.4f} "
            f"(sign-off {after.get('sign_off_rate', 0):.0%}); "
            f"{'promoted' if promoted else 'kept production: ' + report.verdict.reason}; "
            f"test win rate over {previous} {r['test_win_rate_vs_previous']:.2f}; unsupported "
            f"claims on test {r['candidate_test_claims']} against {r['production_before_claims']}, "
            f"on held-out probes {r['candidate_probe_claims']} against "
            f"{r['production_before_probe_claims']}",
            flush=True,
        )
        before = after
    assert last_run is not None
    print("seed noise (the last round's training files, other seeds):", flush=True)
    noise = seed_noise(
        engine, train_config, last_run, args.noise_seeds, test, tmp, settings.artifacts_dir
    )
    spread_of = [rounds[-1]["candidate_test"]["voice_similarity"], *noise["seeds"].values()]
    noise["spread"] = round(max(spread_of) - min(spread_of), 4)
    noise["stdev"] = round(statistics.stdev(spread_of), 4) if len(spread_of) > 1 else 0.0
    result["seed_noise"] = noise
    margin = noise["spread"]
    for r in rounds:
        cand, prev = (
            r["candidate_test"]["voice_similarity"],
            r["production_before"]["voice_similarity"],
        )
        worse = r["candidate_claims_clearly_worse"]
        r["decision_right"] = (
            cand >= prev - margin and not worse if r["promoted"] else cand <= prev + margin or worse
        )
        r["production_fell"] = r["production_after"]["voice_similarity"] < prev - margin
    result["checks"] = {
        "production_never_fell": not any(r["production_fell"] for r in rounds),
        "no_worse_model_promoted": all(r["decision_right"] for r in rounds if r["promoted"]),
        "decisions_right": sum(r["decision_right"] for r in rounds),
        "every_round_under_5_min": all(r["under_5_min"] for r in rounds),
    }
    print(f"\nseed noise: spread {margin:.4f} over {len(spread_of)} seeds")
    print(f"{'round':>5} {'approved':>8} {'cand':>7} {'prod':>7} {'sign-off':>8} {'win':>5} "
          f"{'promoted':>8} {'right':>5} {'run s':>6} {'CPU s':>6}")  # fmt: skip
    for r in rounds:
        after = r["production_after"]
        print(f"{r['round']:>5} {r['approved']:>8} {r['candidate_test']['voice_similarity']:>7.4f} "
              f"{after['voice_similarity']:>7.4f} {after.get('sign_off_rate', 0):>8.0%} "
              f"{r['test_win_rate_vs_previous']:>5.2f} {r['promoted']!s:>8} "
              f"{r['decision_right']!s:>5} {r['run_wall_seconds']:>6.0f} {r['run_cpu_seconds']:>6.0f}")  # fmt: skip
    print(json.dumps(result["checks"]))
    write_result("loop_rounds", result, ["torch", "transformers", "peft"])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
