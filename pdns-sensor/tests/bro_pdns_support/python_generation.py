"""Fills a database the way bro-pdns's Python version did, for
tests/bro_pdns_import.rs.

bro-pdns's own Python program (bro_pdns.py, last at commit 4d94969 of
github.com/JustinAzoff/bro-pdns, 2015) cannot be run here: it is Python 2
only, is on no package registry, and its repository carries no licence, so
it may not be copied in. This script is written from reading it, not copied
from it, and keeps what matters to an importer:

* the table: `dns`, SQLAlchemy `Table('dns', ...)` with query String(255),
  type String(16), answer String(255) (the three the primary key, query and
  answer indexed), count Integer, ttl Integer, first DateTime, last
  DateTime -- created here by SQLAlchemy itself, so the DDL and the way
  DateTime is stored (SQLite: 'YYYY-MM-DD HH:MM:SS.ffffff' text;
  PostgreSQL: timestamp without time zone) are SQLAlchemy's;
* the aggregation of one file: per (query, qtype_name, answer), the number
  of answer occurrences, the TTL and the `ts` of the last occurrence
  (`query` is the question of the reply: bro-pdns logged it as `ans_query`
  with its own script, the same name Zeek logs as `query`);
* the upsert per file: an existing row gets count + 1 (whatever the file
  held), last and ttl set; a new row count = the file's occurrences,
  first = last = the last occurrence's time;
* times: datetime.fromtimestamp(float(ts)), a naive local time in the zone
  of the process (the test sets TZ);
* TTL '-' stored as NULL, and so is a TTL of 0 (its `x and int(x) or None`
  idiom);
* a file is loaded in one transaction: where the database enforces the
  255-character columns (PostgreSQL), a longer answer (a long TXT) fails
  the file, which is then missing from the database as it was from
  bro-pdns's (reported on stderr).

Checked against bro_pdns.py itself (commit 4d94969, Python 2.7.18 with
SQLAlchemy 0.9.3 and bottle 0.11.6, its pinned requirements, from PyPI; the
logs given an `ans_query` column equal to `query`, as its Zeek script
adds): on the TSV baselines of testdata/zeek-dnslog, loaded file by file,
both wrote identical `dns` tables, in SQLite (TZ=Europe/Berlin) and in
PostgreSQL 15 (TZ=America/New_York, where both failed the same file on a
255-character column).

Usage: python3 python_generation.py DB_URL DNS_LOG...
"""

import datetime
import sys

from sqlalchemy import (Column, DateTime, Integer, MetaData, String, Table,
                        create_engine)
from sqlalchemy.exc import DataError

metadata = MetaData()
dns = Table(
    "dns",
    metadata,
    Column("query", String(255), primary_key=True, index=True),
    Column("type", String(16), primary_key=True),
    Column("answer", String(255), primary_key=True, index=True),
    Column("count", Integer),
    Column("ttl", Integer),
    Column("first", DateTime),
    Column("last", DateTime),
)


def read_tsv(path):
    """Data lines of a Zeek TSV log as dicts; vectors as lists."""
    sep, set_sep, fields, types = "\t", ",", None, None
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#separator"):
                sep = line.split(" ", 1)[1].encode().decode("unicode_escape")
            elif line.startswith("#set_separator"):
                set_sep = line.split(sep, 1)[1]
            elif line.startswith("#fields"):
                fields = line.split(sep)[1:]
            elif line.startswith("#types"):
                types = line.split(sep)[1:]
            elif line.startswith("#") or not fields:
                continue
            else:
                rec = dict(zip(fields, line.split(sep)))
                for field, kind in zip(fields, types or []):
                    if kind.startswith("vector[") and field in rec:
                        rec[field] = rec[field].split(set_sep)
                yield rec


def aggregate(path):
    counts, ttls, times = {}, {}, {}
    for rec in read_tsv(path):
        answers, ttl_list = rec.get("answers"), rec.get("TTLs")
        if not isinstance(answers, list) or not isinstance(ttl_list, list):
            continue
        key_q, key_t = rec["query"], rec["qtype_name"]
        for answer, ttl in zip(answers, ttl_list):
            key = (key_q, key_t, answer)
            counts[key] = counts.get(key, 0) + 1
            ttls[key] = ttl
            times[key] = rec["ts"]
    for key in sorted(counts):
        yield key, counts[key], ttls[key], times[key]


def load(conn, path):
    c = dns.c
    for (query, qtype, answer), count, ttl, ts in aggregate(path):
        when = datetime.datetime.fromtimestamp(float(ts))
        ttl = (int(float(ttl)) if ttl != "-" else None) or None
        match = (c.query == query) & (c.type == qtype) & (c.answer == answer)
        done = conn.execute(
            dns.update().where(match).values(count=c.count + 1, last=when, ttl=ttl)
        )
        if done.rowcount == 0:
            conn.execute(
                dns.insert().values(
                    query=query, type=qtype, answer=answer, ttl=ttl, count=count,
                    first=when, last=when,
                )
            )


def main():
    engine = create_engine(sys.argv[1])
    metadata.create_all(engine)
    for path in sys.argv[2:]:
        try:
            with engine.begin() as conn:
                load(conn, path)
        except DataError as e:
            print(f"{path}: not loaded: {e.orig}".strip(), file=sys.stderr)


if __name__ == "__main__":
    main()
