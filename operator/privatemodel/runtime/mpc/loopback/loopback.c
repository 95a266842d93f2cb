/* Preloaded into every process that runs a TensorFlow server (players and controllers).
 *
 * TensorFlow 2.12 binds its gRPC server to "0.0.0.0:PORT" with insecure credentials, whatever the
 * cluster spec says, and it executes any graph a connecting process sends. This library rewrites
 * every wildcard bind() of the process to 127.0.0.1, so the server is reachable only from the
 * party's own host (or pod); peers come in through the party's TLS proxy. Ports named in
 * PRIVATEMODEL_PUBLIC_PORTS (comma-separated: the process's own HTTPS endpoints) are left alone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

/* Looked up by the runtime (ctypes) to prove the library is loaded before anything listens. */
int privatemodel_loopback_active = 1;

static int is_public_port(unsigned short port) {
  const char *list = getenv("PRIVATEMODEL_PUBLIC_PORTS");
  if (list == NULL) return 0;
  while (*list) {
    char *end;
    long value = strtol(list, &end, 10);
    if (end == list) return 0;
    if (value == port) return 1;
    list = (*end == ',') ? end + 1 : end;
  }
  return 0;
}

int bind(int fd, const struct sockaddr *address, socklen_t length) {
  static bind_fn real_bind = NULL;
  if (real_bind == NULL) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
  if (real_bind == NULL) {
    errno = ENOSYS;
    return -1;
  }
  if (address != NULL && address->sa_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in v4;
    memcpy(&v4, address, sizeof v4);
    if (v4.sin_addr.s_addr == htonl(INADDR_ANY) && !is_public_port(ntohs(v4.sin_port))) {
      v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      return real_bind(fd, (const struct sockaddr *)&v4, sizeof v4);
    }
  } else if (address != NULL && address->sa_family == AF_INET6 && length >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 v6;
    memcpy(&v6, address, sizeof v6);
    if (memcmp(&v6.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0 && !is_public_port(ntohs(v6.sin6_port))) {
      /* 127.0.0.1 as a v4-mapped address: gRPC's dual-stack socket then takes the IPv4 loopback
         connections the hostmaps name, and nothing from any other address. */
      static const unsigned char v4_mapped_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
      memcpy(&v6.sin6_addr, v4_mapped_loopback, sizeof v4_mapped_loopback);
      return real_bind(fd, (const struct sockaddr *)&v6, sizeof v6);
    }
  }
  return real_bind(fd, address, length);
}
