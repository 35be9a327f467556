/*
 * wake MAC BROADCAST: send one magic packet (6 x 0xff, then MAC 16 times) as a UDP broadcast
 * to port 9. The wake command the baseline runs once per trigger, as wakeupd runs etherwake;
 * written in C so the baseline pays only for the process it starts, not for an interpreter.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  unsigned int m[6];
  unsigned char packet[102];
  struct sockaddr_in to;
  int one = 1, fd, i;
  if (argc != 3 || sscanf(argv[1], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) {
    fprintf(stderr, "usage: wake MAC BROADCAST\n");
    return 2;
  }
  memset(packet, 0xff, 6);
  for (i = 0; i < 96; i++) packet[6 + i] = (unsigned char)m[i % 6];
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons(9);
  if (inet_pton(AF_INET, argv[2], &to.sin_addr) != 1) return 2;
  fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0) return 1;
  if (sendto(fd, packet, sizeof packet, 0, (struct sockaddr *)&to, sizeof to) != sizeof packet) return 1;
  close(fd);
  return 0;
}
