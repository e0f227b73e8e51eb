"""The committed results/ as a new user opens it: every table folder with plain pandas, pyarrow
and (where installed) DuckDB, no options, no harness."""
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from harness.store.results import TABLES, ResultsStore

RESULTS = Path(__file__).resolve().parents[1] / "results"
COMMITTED = [t for t in TABLES if ResultsStore(RESULTS).parts(t)]


def test_results_has_committed_tables():
    assert {"runs", "summary", "rank", "train", "memory", "cka"} <= set(COMMITTED)


@pytest.mark.parametrize("table", COMMITTED)
def test_every_committed_table_opens_with_plain_readers(table):
    folder = RESULTS / table
    parts = ResultsStore(RESULTS).parts(table)
    for part in parts:  # what keeps the folder readable when the next part is appended
        assert pq.read_schema(part).equals(TABLES[table].schema, check_metadata=True), part.name
    rows = sum(pq.read_metadata(p).num_rows for p in parts)
    df = pd.read_parquet(folder)
    assert list(df.columns) == TABLES[table].schema.names and len(df) == rows
    assert ds.dataset(folder).to_table().num_rows == rows == len(ResultsStore(RESULTS).read(table))


def test_the_duckdb_one_liner_of_the_docs_reads_the_committed_results():
    duckdb = pytest.importorskip("duckdb")  # optional: pip install -e '.[duckdb]'
    best = duckdb.sql("SELECT sampler, avg(best_ground_truth) FROM 'results/summary/*.parquet' GROUP BY 1 ORDER BY 1"
                      .replace("results/", f"{RESULTS}/")).fetchall()
    summary = pd.read_parquet(RESULTS / "summary")
    expected = sorted(summary.groupby("sampler")["best_ground_truth"].mean().items())
    assert [s for s, _ in best] == [s for s, _ in expected]
    assert [v for _, v in best] == pytest.approx([v for _, v in expected], rel=1e-12)  # summation order
    rows = duckdb.sql(f"SELECT count(*) FROM '{RESULTS}/train/*.parquet'").fetchall()[0][0]
    assert rows == len(pd.read_parquet(RESULTS / "train"))
