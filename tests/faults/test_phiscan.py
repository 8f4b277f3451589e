"""The PHI search itself (tests/faults/phiscan.py): written forms, case, number boundaries,
Parquet string columns."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tests.faults.phiscan import patterns, scan


def test_written_forms_of_names_and_dates():
    pats = set(patterns(["Przybylski^Casimir", "19680321"]))
    for form in ("przybylski^casimir", "przybylski casimir", "casimir przybylski", "przybylski, casimir",
                 "19680321", "1968-03-21", "1968/03/21", "21/03/1968", "03/21/1968", "21.03.1968"):
        assert form.encode() in pats, form


def test_hits_are_case_insensitive_and_numbers_must_stand_alone(tmp_path):
    (tmp_path / "log.txt").write_text("Patient PRZYBYLSKI CASIMIR seen; ts=1719680321550\nid 03735038.\n")
    found = scan([tmp_path], ["Przybylski^Casimir", "19680321", "03735038", "Nakashima^Henrietta"])
    assert sorted(v for _, v, _ in found.hits) == ["03735038", "Przybylski^Casimir"]
    assert found.files == 1 and found.bytes > 0


def test_parquet_string_columns_are_decoded(tmp_path):
    pq.write_table(pa.table({"impression": ["Normal LV. Discussed with Mr. Thistlewood."] * 50}),
                   tmp_path / "part.parquet", compression="zstd")
    found = scan([tmp_path], ["Mr. Thistlewood"])
    assert [v for _, v, _ in found.hits] == ["Mr. Thistlewood"]
