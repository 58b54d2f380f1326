/*
 * A near-zero-cost MCP server for the latency harness: newline-delimited JSON-RPC on stdin/stdout
 * (MCP basic/transports#stdio), no SDK, no allocation per message beyond the line buffer.
 *
 * Why C compiled at run time rather than a Native AOT console: it compiles in well under a second
 * (an AOT publish takes ~7 s and a NuGet restore), starts in about a millisecond, and has no GC or
 * thread pool, so its own cost and jitter are as small as the machine allows and the proxy's cost
 * stands out. The harness measures the *difference* between configurations; the upstream must not
 * blur it.
 *
 * It answers initialize (echoing the client's protocolVersion), tools/list (one tool, `echo`),
 * tools/call (the `message` argument back as text), ping and any other request with an empty
 * result; notifications are ignored. The id token is copied verbatim (number or string). It is not
 * a JSON parser: it looks for top-level keys in the shapes MCP clients and the proxies under test
 * send (`"key":` with optional spaces), which is all a benchmark upstream needs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Finds `"key"` followed by optional spaces and a colon; returns the first byte of the value. */
static const char *value_of(const char *line, const char *key)
{
    size_t klen = strlen(key);
    const char *p = line;
    while ((p = strstr(p, key)) != NULL) {
        const char *q = p + klen;
        while (*q == ' ' || *q == '\t') q++;
        if (*q == ':') {
            q++;
            while (*q == ' ' || *q == '\t') q++;
            return q;
        }
        p += klen;
    }
    return NULL;
}

/* Length of the JSON token at v: a string (escapes honoured), or a number/literal. */
static size_t token_length(const char *v)
{
    const char *p = v;
    if (*p == '"') {
        p++;
        while (*p && *p != '"') {
            if (*p == '\\' && p[1]) p++;
            p++;
        }
        return (size_t)(p - v) + (*p == '"' ? 1 : 0);
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r') p++;
    return (size_t)(p - v);
}

static int method_is(const char *method, const char *name)
{
    size_t n = strlen(name);
    return method[0] == '"' && strncmp(method + 1, name, n) == 0 && method[1 + n] == '"';
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    /* Fully buffered stdout, flushed once per answer: one write(2) per message. */
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);

    while ((len = getline(&line, &cap, stdin)) != -1) {
        const char *id = value_of(line, "\"id\"");
        const char *method = value_of(line, "\"method\"");
        if (id == NULL || method == NULL) continue; /* notification or a response: nothing to answer */
        int idlen = (int)token_length(id);

        if (method_is(method, "tools/call")) {
            const char *msg = value_of(line, "\"message\"");
            if (msg != NULL && *msg == '"') {
                int mlen = (int)token_length(msg);
                printf("{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":%.*s}]}}\n",
                       idlen, id, mlen, msg);
            } else {
                printf("{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"\"}]}}\n",
                       idlen, id);
            }
        } else if (method_is(method, "initialize")) {
            const char *version = value_of(line, "\"protocolVersion\"");
            int vlen = version != NULL && *version == '"' ? (int)token_length(version) : 0;
            printf("{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"protocolVersion\":%.*s,"
                   "\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"latency-echo\",\"version\":\"1.0.0\"}}}\n",
                   idlen, id, vlen > 0 ? vlen : 12, vlen > 0 ? version : "\"2025-06-18\"");
        } else if (method_is(method, "tools/list")) {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"tools\":[{\"name\":\"echo\","
                   "\"description\":\"Returns the message argument.\",\"inputSchema\":{\"type\":\"object\","
                   "\"properties\":{\"message\":{\"type\":\"string\"}},\"required\":[\"message\"]}}]}}\n",
                   idlen, id);
        } else {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{}}\n", idlen, id);
        }
        fflush(stdout);
    }
    free(line);
    return 0;
}
