// SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
// SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
/* directory.c — the in-memory directory of users, devices and services.
 *
 * The store is the source of truth; the directory is loaded from it at
 * start and kept in step by the admin commands. It exists because every
 * send needs both users' device sets and every CONNECT and ACL check needs
 * an account lookup: those must be O(1) and allocation-free on the broker's
 * thread, not a RocksDB iterator each. It also holds the one piece of state
 * the store does not: which connection each device currently has.
 */
#include "core_internal.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

int dir_init(directory *d)
{
	memset(d, 0, sizeof(*d));
	if (hmap_init(&d->users) || hmap_init(&d->devices) || hmap_init(&d->services)) {
		dir_free(d);
		return CHAT_ENOMEM;
	}
	return CHAT_OK;
}

void dir_free(directory *d)
{
	void *v;
	size_t i = 0;
	while (hmap_iter(&d->devices, &i, &v)) {
		free(((device *)v)->push.token);
		free(v);
	}
	for (i = 0; hmap_iter(&d->users, &i, &v);)
		free(v);
	for (i = 0; hmap_iter(&d->services, &i, &v);)
		free(v);
	hmap_free(&d->users);
	hmap_free(&d->devices);
	hmap_free(&d->services);
}

user *dir_user(directory *d, const char *name, size_t len)
{
	return hmap_get(&d->users, name, len);
}

device *dir_device(directory *d, const char *addr, size_t len)
{
	return hmap_get(&d->devices, addr, len);
}

service *dir_service(directory *d, const char *name, size_t len)
{
	return hmap_get(&d->services, name, len);
}

int dir_add_device(directory *d, const char *uname, const char *dname, const uint8_t hash[STORE_HASH_LEN],
                   device **out)
{
	size_t ul = strlen(uname), dl = strlen(dname);
	user *u = dir_user(d, uname, ul);
	bool new_user = !u;
	if (new_user) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return CHAT_ENOMEM;
		memcpy(u->name, uname, ul);
	}
	if (u->ndev == CORE_MAX_DEVICES) {
		if (new_user)
			free(u);
		return CHAT_EQUOTA;
	}
	device *dev = calloc(1, sizeof(*dev));
	if (!dev) {
		if (new_user)
			free(u);
		return CHAT_ENOMEM;
	}
	memcpy(dev->addr, uname, ul);
	dev->addr[ul] = '/';
	memcpy(dev->addr + ul + 1, dname, dl);
	dev->id = dev->addr + ul + 1;
	dev->user = u;
	memcpy(dev->hash, hash, STORE_HASH_LEN);
	if (hmap_put(&d->devices, dev->addr, ul + 1 + dl, dev) ||
	    (new_user && hmap_put(&d->users, u->name, ul, u))) {
		hmap_del(&d->devices, dev->addr, ul + 1 + dl);
		free(dev);
		if (new_user)
			free(u);
		return CHAT_ENOMEM;
	}
	size_t i = u->ndev;
	while (i > 0 && strcmp(u->dev[i - 1]->id, dev->id) > 0) {
		u->dev[i] = u->dev[i - 1];
		i--;
	}
	u->dev[i] = dev;
	u->ndev++;
	if (out)
		*out = dev;
	return CHAT_OK;
}

void dir_remove_device(directory *d, device *dev)
{
	user *u = dev->user;
	dir_set_offline(d, dev);
	hmap_del(&d->devices, dev->addr, strlen(dev->addr));
	for (size_t i = 0; i < u->ndev; i++) {
		if (u->dev[i] == dev) {
			memmove(&u->dev[i], &u->dev[i + 1], (u->ndev - i - 1) * sizeof(u->dev[0]));
			u->ndev--;
			break;
		}
	}
	free(dev->push.token);
	free(dev);
	if (u->ndev == 0) {
		hmap_del(&d->users, u->name, strlen(u->name));
		free(u);
	}
}

int dir_add_service(directory *d, const char *name, const uint8_t hash[STORE_HASH_LEN],
                    enum store_role role)
{
	size_t len = strlen(name);
	service *s = dir_service(d, name, len);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return CHAT_ENOMEM;
		memcpy(s->name, name, len);
		if (hmap_put(&d->services, s->name, len, s)) {
			free(s);
			return CHAT_ENOMEM;
		}
	}
	memcpy(s->hash, hash, STORE_HASH_LEN);
	s->role = role;
	return CHAT_OK;
}

void dir_remove_service(directory *d, service *s)
{
	hmap_del(&d->services, s->name, strlen(s->name));
	free(s);
}

void dir_set_online(directory *d, device *dev, void *conn)
{
	if (!dev->conn) {
		d->online++;
		dev->user->nonline++;
	}
	dev->conn = conn;
}

void dir_set_offline(directory *d, device *dev)
{
	if (dev->conn) {
		d->online--;
		dev->user->nonline--;
	}
	dev->conn = NULL;
}
