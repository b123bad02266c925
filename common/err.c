// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
#include "err.h"

const char *chat_strerror(int err)
{
	switch (err) {
	case CHAT_STOP: return "stopped";
	case CHAT_OK: return "ok";
	case CHAT_ENOMEM: return "out of memory";
	case CHAT_EINVAL: return "invalid input";
	case CHAT_ENOTFOUND: return "not found";
	case CHAT_EEXIST: return "already exists";
	case CHAT_EIO: return "i/o error";
	case CHAT_ETOOBIG: return "too large";
	case CHAT_EDENIED: return "not allowed";
	case CHAT_EQUOTA: return "quota exceeded";
	case CHAT_ECORRUPT: return "corrupt record";
	}
	return "unknown error";
}
