#!/usr/bin/env bash
# Row decoder on binlog events a real server wrote: records a MariaDB binlog with sysbench rows (sbtest1: INT, INT,
# CHAR(120), CHAR(60); inserts and updates) and a table of 100 INT columns, then runs the criterion group
# `decode_recorded` (mysql/benches/decode.rs) over that file: rows/s per table, one core, plans built once per
# TABLE_MAP as the binlog reader does.
#   tests/bench/decode_recorded.sh            (BENCH_REC_ROWS=100000 rows per table by default)
# The instance is bench_rec on ${BENCH_REC_PORT:-3320}; it is destroyed at the end unless BENCH_KEEP=1.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${BENCH_REC_PORT:=3320}"
: "${BENCH_REC_ROWS:=100000}"
BENCH_DURABLE=0

bench_instance bench_rec "$BENCH_REC_PORT" 21
trap 'bench_destroy bench_rec' EXIT
P="$BENCH_REC_PORT"
blog "recording: $BENCH_REC_ROWS sbtest rows (insert + update) and $BENCH_REC_ROWS rows of 100 INT columns"
wide_cols=$(for i in $(seq 1 99); do printf ', c%d INT NOT NULL' "$i"; done)
wide_vals=$(for i in $(seq 1 99); do printf ', seq + %d' "$i"; done)
qi "$P" <<SQL
SET SESSION binlog_format = 'ROW';
DROP DATABASE IF EXISTS rec;
CREATE DATABASE rec;
USE rec;
CREATE TABLE sbtest1 (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0,
  c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k)) DEFAULT CHARSET utf8mb4;
CREATE TABLE wide100 (id INT NOT NULL PRIMARY KEY $wide_cols);
FLUSH BINARY LOGS;
INSERT INTO sbtest1 (k, c, pad)
  SELECT FLOOR(RAND() * $BENCH_REC_ROWS),
         CONCAT_WS('-', LPAD(seq, 11, '7'), LPAD(seq * 3, 11, '1'), LPAD(seq * 7, 11, '2'), LPAD(seq * 11, 11, '3'),
                   LPAD(seq * 13, 11, '4'), LPAD(seq * 17, 11, '5'), LPAD(seq * 19, 11, '6'), LPAD(seq * 23, 11, '8'),
                   LPAD(seq * 29, 11, '9'), LPAD(seq * 31, 11, '0')),
         CONCAT_WS('-', LPAD(seq, 11, '3'), LPAD(seq * 5, 11, '4'), LPAD(seq * 9, 11, '5'), LPAD(seq * 15, 11, '6'),
                   LPAD(seq * 21, 11, '7'))
  FROM seq_1_to_$BENCH_REC_ROWS;
UPDATE sbtest1 SET k = k + 1 WHERE id % 2 = 0;
INSERT INTO wide100 SELECT seq $wide_vals FROM seq_1_to_$BENCH_REC_ROWS;
FLUSH BINARY LOGS;
SQL
base=$(q "$P" "SELECT @@log_bin_basename")
# The file written between the two FLUSHes: the second newest.
file=$(q "$P" "SHOW BINARY LOGS" | tail -n2 | head -n1 | cut -f1)
rec="$(mktemp -d)/recorded.binlog"
cp "$(dirname "$base")/$file" "$rec"
blog "recorded $(du -h "$rec" | cut -f1) in $file"
cd "$REPO"
DTLE_BENCH_BINLOG="$rec" cargo bench -q -p dtle-mysql --bench decode -- decode_recorded 2>&1 |
    grep -E "rows events|decode_recorded/|thrpt" || true
rm -rf "$(dirname "$rec")"
