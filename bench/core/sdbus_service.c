/* The limit for bench/core/calls: quick(i) -> s under vigil's names, in C on sd-bus, on the
 * bus in DBUS_SESSION_BUS_ADDRESS. Prints "ready" once it owns the name. Bits above 64 are
 * refused: the bench calls quick(16), and a bignum would measure something else. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <systemd/sd-bus.h>

static int quick(sd_bus_message *m, void *userdata, sd_bus_error *error) {
  int32_t bits;
  int r = sd_bus_message_read(m, "i", &bits);
  if (r < 0) return r;
  if (bits < 1 || bits > 64)
    return sd_bus_error_setf(error, "org.vigil.Vigil1.Error.InvalidArgument",
                             "bits must be 1..64 here, not %" PRId32, bits);
  uint64_t value;
  if (getrandom(&value, sizeof value, 0) != sizeof value) return -errno;
  if (bits < 64) value &= (UINT64_C(1) << bits) - 1;
  char text[24];
  snprintf(text, sizeof text, "%" PRIu64, value);
  return sd_bus_reply_method_return(m, "s", text);
}

static const sd_bus_vtable vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("quick", "i", "s", quick, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

int main(void) {
  sd_bus *bus = NULL;
  const char *address = getenv("DBUS_SESSION_BUS_ADDRESS");
  int r = sd_bus_new(&bus);
  if (r >= 0) r = sd_bus_set_address(bus, address);
  if (r >= 0) r = sd_bus_set_bus_client(bus, 1);
  if (r >= 0) r = sd_bus_start(bus);
  if (r >= 0)
    r = sd_bus_add_object_vtable(bus, NULL, "/org/vigil/Vigil1/RandomData",
                                 "org.vigil.Vigil1.RandomData", vtable, NULL);
  if (r >= 0) r = sd_bus_request_name(bus, "org.vigil.Vigil1", 0);
  if (r < 0) {
    fprintf(stderr, "sdbus_service: %s\n", strerror(-r));
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    r = sd_bus_process(bus, NULL);
    if (r < 0) break;
    if (r > 0) continue;
    r = sd_bus_wait(bus, UINT64_MAX);
    if (r < 0) break;
  }
  sd_bus_unref(bus);
  return r < 0 ? 1 : 0;
}
