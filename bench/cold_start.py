"""6. The Lambda cold path: import time of the HTTP entry against `import boto3`
alone, from bench/cold_path.py (fresh interpreters, medians, interleaved)."""

from __future__ import annotations

from pathlib import Path

from bench import cold_path
from bench.report import Row, Section, checkout, ms, ratio

TITLE = "6. Lambda cold path (imports in a fresh interpreter)"


def run(quick: bool, compare_with: Path | None = None) -> Section:
    runs = 3 if quick else 7
    result = cold_path.measure(runs, compare_with=compare_with)
    boto3 = result["boto3_s"]
    section = Section(TITLE, f"`import boto3` alone, the floor of every Corral Lambda "
                      f"(median of {runs} fresh interpreters each, interleaved).")  # fmt: skip
    section.rows = [
        Row("`import handlers.lambda_http`", ms(result["lambda_http_s"]), ms(boto3),
            ratio(result["lambda_http_s"], boto3)),
        Row("… and build the app (`make_handler(get_app())`)", ms(result["lambda_http_app_s"]),
            ms(boto3), ratio(result["lambda_http_app_s"], boto3)),
        Row("its libraries alone (boto3, falcon, pydantic, redis, apig-wsgi)",
            ms(result["libraries_s"]), ms(boto3), ratio(result["libraries_s"], boto3)),
    ]  # fmt: skip
    if compare_with is not None:
        section.rows += [
            Row(f"{label}, before (`--compare-with`)", ms(result[f"before_{name}"]), ms(boto3),
                ratio(result[f"before_{name}"], boto3))
            for label, name in (("`import handlers.lambda_http`", "lambda_http_s"),
                                ("… and build the app", "lambda_http_app_s"))
        ]  # fmt: skip
    heavy = result["heavy_modules_loaded"]
    section.details = [
        "Host drivers or rq's worker pulled in by the HTTP entry: "
        + (", ".join(f"`{m}`" for m in heavy) if heavy else "none")
        + "."
    ]
    section.notes = [
        "Times are measured inside each child interpreter, so interpreter start-up is "
        "left out; one unmeasured round first fills the page and bytecode caches. "
        "Building the app creates a boto3 client and a Redis pool but connects to nothing.",
        "Timed with bytecode, as deployed: pip compiled boto3's and the other libraries', "
        "the Lambda artifact carries ours (scripts/package-serverless.sh); the children "
        "run without PYTHONDONTWRITEBYTECODE, so that the first round writes ours.",
        "`its libraries alone` imports only the third-party packages the HTTP entry "
        "loads: the part of its time that no change to Corral's own modules can remove.",
    ]
    if compare_with is not None:
        section.notes.append(
            f"`before` is Corral as checked out in {checkout(compare_with)} "
            "(`--compare-with`), timed in the same interleaved rounds."
        )
    return section
