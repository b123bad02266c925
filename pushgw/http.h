/* http.h — the smallest HTTP/1.1 client the push gateway needs: one POST
 * per connection (Connection: close) with an overall deadline, over plain
 * TCP. Push providers speak HTTPS; put a local TLS-terminating proxy (e.g.
 * stunnel, nginx, envoy) between the gateway and them (README, "Push
 * notifications"). Blocking calls: the gateway runs them on worker
 * threads, never on its MQTT thread.
 */
#ifndef CHAT_PUSHGW_HTTP_H
#define CHAT_PUSHGW_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_HOST_MAX 255
#define HTTP_PATH_MAX 8192
#define HTTP_BODY_MAX 4096 /* bytes of a response body kept */

typedef struct http_url {
	char host[HTTP_HOST_MAX + 1];
	char port[6];
	char path[HTTP_PATH_MAX + 1];
} http_url;

/* Parses http://host[:port][/path]; false with a reason in *why. */
bool http_url_parse(const char *url, http_url *out, const char **why);

typedef struct http_resp {
	int status;                        /* e.g. 200 */
	char body[HTTP_BODY_MAX + 1];      /* NUL-terminated, truncated */
	size_t body_len;
} http_resp;

/* POSTs body (Content-Type: application/json) to u with the extra header
 * lines `headers` ("Name: value\r\n" each, or ""), all within timeout_ms.
 * Returns 0 with resp filled, or -1 with a reason in err (no connection,
 * timeout, malformed response): worth retrying. */
int http_post(const http_url *u, const char *headers, const char *body, size_t len,
              int timeout_ms, http_resp *resp, char *err, size_t errlen);

#endif
