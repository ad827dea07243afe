-- The source of the compatibility recording (tests/compat/README.md): every column type and key shape, and the
-- rows both tools read in their full copy. One statement per line group, each ending with `;` at the end of a
-- line; run in one session, in order, by tests/compat/record.sh and driver/tests/e2e_kafka.rs.
SET NAMES utf8mb4;
SET SESSION sql_mode = '';
SET SESSION time_zone = '+00:00';
DROP DATABASE IF EXISTS dtle_compat;
CREATE DATABASE dtle_compat CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE TABLE dtle_compat.t_int (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, t1 TINYINT(1), si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  nn INT NOT NULL, dflt INT DEFAULT 5, nn_dflt INT NOT NULL DEFAULT 7
);
CREATE TABLE dtle_compat.t_num (
  id INT NOT NULL PRIMARY KEY,
  dec10 DECIMAL(10,2), dec40 DECIMAL(40,5), decu DECIMAL(5,0) UNSIGNED,
  f FLOAT, d DOUBLE, fmd FLOAT(7,3), b1 BIT(1), b10 BIT(10), b64 BIT(64)
);
CREATE TABLE dtle_compat.t_time (
  id INT NOT NULL PRIMARY KEY,
  d DATE, t TIME, t6 TIME(6), dt DATETIME, dt3 DATETIME(3), dt6 DATETIME(6),
  ts TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL, ts6 TIMESTAMP(6) NULL, y YEAR,
  d_nn DATE NOT NULL, d_nn_dflt DATE NOT NULL DEFAULT '2000-01-01', dt_nn DATETIME NOT NULL,
  ts_nn TIMESTAMP NOT NULL DEFAULT '2001-02-03 04:05:06'
);
CREATE TABLE dtle_compat.t_text (
  id INT NOT NULL PRIMARY KEY,
  c CHAR(10), vc VARCHAR(40), tx TEXT,
  vl VARCHAR(20) CHARACTER SET latin1, cl CHAR(5) CHARACTER SET latin1,
  vg VARCHAR(20) CHARACTER SET gbk, tg TEXT CHARACTER SET gbk,
  e ENUM('a','b','中文'), eg ENUM('甲','乙') CHARACTER SET gbk,
  s SET('x','y','z'), sg SET('甲','乙') CHARACTER SET gbk, j JSON
);
CREATE TABLE dtle_compat.t_bin (
  id INT NOT NULL PRIMARY KEY,
  bn BINARY(4), vb VARBINARY(8), bl BLOB, tb TINYBLOB, mb MEDIUMBLOB, g GEOMETRY, p POINT
);
CREATE TABLE dtle_compat.t_ck (
  a INT NOT NULL, b VARCHAR(10) NOT NULL, c INT NOT NULL, v VARCHAR(20),
  PRIMARY KEY (c, a, b)
);
CREATE TABLE dtle_compat.t_nokey (a INT, b VARCHAR(10));
CREATE TABLE dtle_compat.t_uk (u INT NOT NULL, v VARCHAR(10), UNIQUE KEY uk (u));
CREATE TABLE dtle_compat.t_one (id INT NOT NULL PRIMARY KEY, v VARCHAR(5) NOT NULL DEFAULT 'dflt');
CREATE TABLE dtle_compat.t_zempty (id INT NOT NULL PRIMARY KEY);
CREATE TABLE dtle_compat.t_dflt (
  id INT NOT NULL PRIMARY KEY,
  i INT DEFAULT -3, bu BIGINT UNSIGNED DEFAULT 18446744073709551615, de DECIMAL(8,3) DEFAULT 12.5,
  f FLOAT DEFAULT 1.25, d DOUBLE DEFAULT 1e20, fmd FLOAT(6,2) DEFAULT 3.5, b1 BIT(1) DEFAULT b'1',
  b9 BIT(9) DEFAULT b'100000001', dt DATE DEFAULT '2020-02-02', tm TIME(3) DEFAULT '-01:02:03.500',
  dtm DATETIME(6) DEFAULT '2020-02-02 02:02:02.250000', y YEAR DEFAULT 1999,
  ts TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, ts2 TIMESTAMP(3) NULL DEFAULT CURRENT_TIMESTAMP(3),
  dtc DATETIME NULL DEFAULT CURRENT_TIMESTAMP, c CHAR(5) DEFAULT 'ab', vc VARCHAR(10) CHARACTER SET gbk DEFAULT '默认',
  e ENUM('x','y') DEFAULT 'y', st SET('p','q') DEFAULT 'p,q', vb VARBINARY(4) DEFAULT 'ab'
);
CREATE TABLE dtle_compat.t_more (
  id INT NOT NULL PRIMARY KEY,
  c5 CHAR(5), tt TINYTEXT, mt MEDIUMTEXT, lt LONGTEXT, u3 VARCHAR(10) CHARACTER SET utf8mb3, asc1 VARCHAR(10) CHARACTER SET ascii,
  d65 DECIMAL(65,30), y YEAR, bool1 BOOL, neg DECIMAL(5,2)
);
INSERT INTO dtle_compat.t_int VALUES
  (1, -128, 255, 1, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808,
   18446744073709551615, 0, NULL, 7),
  (2, 127, 0, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 9223372036854775808, -1, 5, 8);
INSERT INTO dtle_compat.t_num VALUES
  (1, 1.50, -12345678901234567890123456789012345.12345, 99999, 1.5, 0.1, 1234.567, b'1', b'1000000001',
   b'1111111111111111111111111111111111111111111111111111111111111111'),
  (2, -0.01, 0, 0, -0.25, 1e300, -0.001, b'0', b'0', b'0'),
  (3, NULL, NULL, NULL, 3.4e38, 1e-300, NULL, NULL, NULL, NULL);
INSERT INTO dtle_compat.t_time VALUES
  (1, '2024-02-29', '-838:59:59', '01:02:03.456789', '2024-01-02 03:04:05', '2024-01-02 03:04:05.678',
   '1960-01-02 03:04:05.123456', '2024-01-02 03:04:05', '2024-01-02 03:04:05.120', '2024-01-02 03:04:05.000120',
   2024, '1969-12-31', '2000-01-01', '9999-12-31 23:59:59', '2038-01-19 03:14:07'),
  (2, '0000-00-00', '00:00:00', '838:59:59.000000', '0000-00-00 00:00:00', '1000-01-01 00:00:00.000',
   '2024-06-30 12:00:00.5', '0000-00-00 00:00:00', NULL, '1970-01-01 00:00:01.000001', 1901, '0000-00-00',
   '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00');
INSERT INTO dtle_compat.t_text VALUES
  (1, 'abc', 'héllo ✓ 😀', 'line1\nline2 "q" \\ / \t tab \Z', 'café €', 'naïf', '中文', '汉字文本', 'b', '乙', 'x,z',
   '甲,乙', '{"a": [1, 2], "b": null}'),
  (2, '', '', '', '', '', '', '', '中文', '甲', '', '', '[]');
INSERT INTO dtle_compat.t_bin VALUES
  (1, x'ff000000', x'ff00', x'deadbeef', x'00', x'0102', ST_GeomFromText('LINESTRING(0 0,1 1,2 1)'),
   ST_GeomFromText('POINT(1 2)')),
  (2, x'01020300', x'', x'', NULL, NULL, ST_GeomFromText('POINT(-1.5 2.25)'), ST_GeomFromText('POINT(0 0)'));
INSERT INTO dtle_compat.t_ck VALUES (1, 'x', 30, 'first'), (2, 'y', 10, 'second'), (1, 'z', 10, 'third');
INSERT INTO dtle_compat.t_nokey VALUES (1, 'one'), (2, 'two'), (2, 'two');
INSERT INTO dtle_compat.t_uk VALUES (1, 'u1'), (2, 'u2');
INSERT INTO dtle_compat.t_one VALUES (1, 'one');
INSERT INTO dtle_compat.t_dflt (id, ts, ts2, dtc) VALUES (1, '2022-01-01 00:00:00', '2022-01-01 00:00:00.5', '2022-01-01 01:01:01');
INSERT INTO dtle_compat.t_dflt VALUES (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  '2022-03-03 03:03:03', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO dtle_compat.t_more VALUES
  (1, 'ab  ', 'tiny', 'medium', 'long', 'utf8mb3 é', 'ascii', '-12345678901234567890123456789012345.123456789012345678901234567890',
   1902, TRUE, -999.99),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, 0.000000000000000000000000000001, 2155, FALSE, 0);
