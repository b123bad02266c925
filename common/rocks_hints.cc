// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* rocks_hints.cc — the one RocksDB option the C API does not reach:
 * memtable insert hints (rocks_util.h).
 *
 * Most keys of both stores are a variable-length part, a '\0', then an
 * increasing tail: the broker store's addr \0 qseq, conv \0 seq, conv \0
 * seq \0 addr; the key server's 'O' U \0 D \0 id. Each device's queue,
 * each conversation and each one-time-key pool appends (or pops from its
 * front), but many of them interleave, so RocksDB's one "last insert"
 * splice per memtable is nearly always stale and every insert searches the
 * skiplist from the top.
 * memtable_insert_with_hint_prefix_extractor keeps a splice per prefix
 * (here: the key up to and including its first '\0'), so an append lands
 * next to the previous key of its prefix in a few comparisons.
 *
 * RocksDB's C API wraps its Options in `struct rocksdb_options_t { Options
 * rep; }` (db/c.cc) and has no setter for this one field. We reach it the
 * same way, after checking at run time that the layout is the one assumed:
 * a value set through the C API must read back through the C++ struct. If
 * it does not (another RocksDB build), the hint is left off and the store
 * works as before, only slower.
 */
#include <cstring>
#include <memory>

#include "rocks_util.h"

#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>

struct rocksdb_options_t {
	rocksdb::Options rep;
};

namespace {

class UpToNul : public rocksdb::SliceTransform {
public:
	const char *Name() const override { return "mosquitto-chat.UpToNul"; }
	rocksdb::Slice Transform(const rocksdb::Slice &key) const override
	{
		const char *z = static_cast<const char *>(std::memchr(key.data(), 0, key.size()));
		return rocksdb::Slice(key.data(), static_cast<size_t>(z - key.data()) + 1);
	}
	bool InDomain(const rocksdb::Slice &key) const override
	{
		return std::memchr(key.data(), 0, key.size()) != nullptr;
	}
};

} // namespace

int chat_rocks_insert_hints(rocksdb_options_t *o)
{
	size_t was = o->rep.write_buffer_size;
	rocksdb_options_set_write_buffer_size(o, was + 4096);
	bool layout_ok = o->rep.write_buffer_size == was + 4096;
	rocksdb_options_set_write_buffer_size(o, was);
	if (!layout_ok)
		return -1;
	try {
		o->rep.memtable_insert_with_hint_prefix_extractor = std::make_shared<UpToNul>();
	} catch (...) {
		return -1;
	}
	/* RocksDB ignores the hints under concurrent memtable writes */
	rocksdb_options_set_allow_concurrent_memtable_write(o, 0);
	return 0;
}
