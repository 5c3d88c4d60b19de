"""Dataset loaders: GSM8K, MATH family, DeepMath, OlympiadBench, AIME/AMC, any file, any hub id.

The entry point is :func:`load_problems`; it returns a :class:`ProblemSet` whose ``report``
(:class:`LoadReport`) counts the rows read, kept and skipped. See ``docs/datasets.md``.

Example:
    >>> from seele_env.loaders import load_problems
    >>> ps = load_problems("gsm8k", data_path="data/gsm8k", split="test")  # doctest: +SKIP
    >>> ps[0].answer, ps.report.summary()  # doctest: +SKIP
    ('18', 'gsm8k test.jsonl: 1319 rows, 1319 loaded, 0 skipped')
"""

from seele_env.loaders.api import DATASETS, DatasetSpec, load_problems
from seele_env.loaders.cleaning import (
    after_think,
    clean_gsm8k,
    format_number,
    last_boxed,
    split_signed_solutions,
    strip_math_delimiters,
)
from seele_env.loaders.problem_set import (
    DatasetWarning,
    LoadReport,
    ProblemSet,
    UnknownProblemError,
)

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "DatasetWarning",
    "LoadReport",
    "ProblemSet",
    "UnknownProblemError",
    "after_think",
    "clean_gsm8k",
    "format_number",
    "last_boxed",
    "load_problems",
    "split_signed_solutions",
    "strip_math_delimiters",
]
