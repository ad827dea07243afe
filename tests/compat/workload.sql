-- The changes both tools read from the binlog after their full copy (tests/compat/README.md). Same rules as
-- schema.sql: one session, in order.
SET NAMES utf8mb4;
SET SESSION sql_mode = '';
SET SESSION time_zone = '+00:00';
INSERT INTO dtle_compat.t_int VALUES (3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
UPDATE dtle_compat.t_int SET i = i + 1, bi = 42 WHERE id = 1;
UPDATE dtle_compat.t_int SET id = 30 WHERE id = 3;
DELETE FROM dtle_compat.t_int WHERE id = 2;
INSERT INTO dtle_compat.t_num VALUES (4, 99999999.99, 1.00001, 1, 1e-10, -1e-5, 0.5, b'1', b'1111111111', b'10');
UPDATE dtle_compat.t_num SET dec10 = dec10 * 2, f = 2.5, b10 = b'11' WHERE id = 1;
DELETE FROM dtle_compat.t_num WHERE id = 3;
INSERT INTO dtle_compat.t_time VALUES
  (3, '1000-01-01', '12:34:56', '-00:00:00.000001', '2024-12-31 23:59:59', '1970-01-01 00:00:00.001',
   '2024-01-02 03:04:05.999999', '1970-01-01 00:00:01', '2024-01-02 03:04:05.999', '2038-01-19 03:14:07.999999',
   2155, '0000-00-00', '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00');
UPDATE dtle_compat.t_time SET d = '0000-00-00', dt = '0000-00-00 00:00:00', ts = '0000-00-00 00:00:00' WHERE id = 1;
INSERT INTO dtle_compat.t_text VALUES
  (3, 'c3', 'v3 ☃', 'text 3', 'Ærø', 'é', '简体', '繁體字', 'a', '甲', 'y', '乙', '{"k": "v"}');
UPDATE dtle_compat.t_text SET e = '中文', eg = '乙', s = 'x,y,z', vg = '更新' WHERE id = 1;
INSERT INTO dtle_compat.t_bin VALUES
  (3, x'00000000', x'00', x'00ff00', x'', x'', ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'),
   ST_GeomFromText('POINT(3.5 -4)'));
UPDATE dtle_compat.t_bin SET bn = x'01000000', p = ST_GeomFromText('POINT(5 6)') WHERE id = 1;
DELETE FROM dtle_compat.t_bin WHERE id = 2;
INSERT INTO dtle_compat.t_ck VALUES (3, 'w', 20, 'fourth');
UPDATE dtle_compat.t_ck SET v = 'changed' WHERE a = 1 AND b = 'x';
UPDATE dtle_compat.t_ck SET c = 11 WHERE a = 2 AND b = 'y';
DELETE FROM dtle_compat.t_ck WHERE a = 1 AND b = 'z';
INSERT INTO dtle_compat.t_nokey VALUES (3, 'three');
UPDATE dtle_compat.t_nokey SET b = 'uno' WHERE a = 1;
DELETE FROM dtle_compat.t_nokey WHERE a = 2 LIMIT 1;
INSERT INTO dtle_compat.t_uk VALUES (3, 'u3');
UPDATE dtle_compat.t_uk SET u = 4 WHERE u = 3;
DELETE FROM dtle_compat.t_uk WHERE u = 1;
BEGIN;
INSERT INTO dtle_compat.t_int (id, nn) VALUES (40, 1), (41, 2);
UPDATE dtle_compat.t_int SET ti = 9 WHERE id IN (40, 41);
DELETE FROM dtle_compat.t_int WHERE id = 41;
COMMIT;
INSERT INTO dtle_compat.t_dflt (id, ts, ts2, dtc) VALUES (3, '2023-01-01 00:00:00', NULL, NULL);
UPDATE dtle_compat.t_dflt SET i = NULL, de = NULL, vc = NULL, e = NULL, ts = '2023-06-06 06:06:06' WHERE id = 1;
INSERT INTO dtle_compat.t_more VALUES (3, 'x ', 'a', 'b', 'c', 'ü', 'z', 1.5, 1901, TRUE, 5.5);
ALTER TABLE dtle_compat.t_dflt ALTER COLUMN i SET DEFAULT 99, MODIFY COLUMN c CHAR(5) DEFAULT 'zz';
INSERT INTO dtle_compat.t_dflt (id, ts, ts2, dtc, i, c) VALUES (4, '2024-01-01 00:00:00', NULL, NULL, NULL, NULL);
ALTER TABLE dtle_compat.t_int ADD COLUMN extra VARCHAR(10) DEFAULT 'x';
INSERT INTO dtle_compat.t_int (id, nn, extra) VALUES (50, 5, 'after');
UPDATE dtle_compat.t_int SET extra = NULL WHERE id = 1;
