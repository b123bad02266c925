// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* store_poke.c — test helper: writes one raw key into a RocksDB directory
 * (the plugin's store or the key server's), to fake what an older or newer
 * build left behind. The integration tests use it to check that a store of
 * an unknown schema version is refused, never misread.
 *
 *   store_poke DIR CF KEY VALUE_HEX     (CF: a column family name; KEY text)
 */
#include <rocksdb/c.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: store_poke DIR CF KEY VALUE_HEX\n");
		return 2;
	}
	const char *dir = argv[1], *cfname = argv[2], *key = argv[3], *hex = argv[4];
	size_t vlen = strlen(hex) / 2;
	char *val = malloc(vlen + 1);
	for (size_t i = 0; i < vlen; i++) {
		unsigned b;
		if (sscanf(hex + 2 * i, "%2x", &b) != 1) {
			fprintf(stderr, "store_poke: bad hex\n");
			return 2;
		}
		val[i] = (char)b;
	}
	rocksdb_options_t *o = rocksdb_options_create();
	char *err = NULL;
	size_t n = 0;
	char **names = rocksdb_list_column_families(o, dir, &n, &err);
	if (err) {
		fprintf(stderr, "store_poke: %s\n", err);
		return 1;
	}
	const rocksdb_options_t **opts = calloc(n, sizeof(*opts));
	rocksdb_column_family_handle_t **h = calloc(n, sizeof(*h));
	for (size_t i = 0; i < n; i++)
		opts[i] = o;
	rocksdb_t *db = rocksdb_open_column_families(o, dir, (int)n, (const char *const *)names,
	                                             opts, h, &err);
	if (err) {
		fprintf(stderr, "store_poke: %s\n", err);
		return 1;
	}
	int rc = 1;
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(wo, 1);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], cfname)) {
			rocksdb_put_cf(db, wo, h[i], key, strlen(key), val, vlen, &err);
			rc = err ? 1 : 0;
		}
	if (err)
		fprintf(stderr, "store_poke: %s\n", err);
	else if (rc)
		fprintf(stderr, "store_poke: no column family %s\n", cfname);
	for (size_t i = 0; i < n; i++)
		rocksdb_column_family_handle_destroy(h[i]);
	rocksdb_close(db);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_options_destroy(o);
	rocksdb_list_column_families_destroy(names, n);
	free(opts);
	free(h);
	free(val);
	return rc;
}
