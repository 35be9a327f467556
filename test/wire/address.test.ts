import { AddressError, parseAddress } from '../../src/bus/wire/address';

test('unix paths, abstract names and tcp, with escapes, several in order', () => {
  expect(parseAddress('unix:path=/run/dbus/system_bus_socket')).toEqual([
    { kind: 'unix', path: '/run/dbus/system_bus_socket' },
  ]);
  expect(parseAddress('unix:path=/tmp/a%20b,guid=0123')).toEqual([
    { kind: 'unix', path: '/tmp/a b' },
  ]);
  expect(
    parseAddress('unix:abstract=/tmp/dbus-XYZ;tcp:host=127.0.0.1,port=4711,family=ipv4'),
  ).toEqual([
    { kind: 'abstract', name: '/tmp/dbus-XYZ' },
    { kind: 'tcp', host: '127.0.0.1', port: 4711, family: 4 },
  ]);
});

test.each([
  ['garbage', /no transport/],
  ['', /empty/],
  ['unix:', /needs path= or abstract=/],
  ['unix:path=', /empty path/],
  ['unix:path=/a,abstract=b', /both/],
  ['unix:tmpdir=/tmp', /to listen on/],
  ['unix:path=/a,path=/b', /twice/],
  ['unix:path', /key=value/],
  ['unix:path=%zz', /bad escape/],
  ['tcp:host=x', /needs port/],
  ['tcp:host=x,port=99999', /not 1–65535/],
  ['tcp:host=x,port=1,family=ipx', /family/],
  ['launchd:env=X', /not supported/],
])('%j is refused with one clear line', (address, why) => {
  let error: unknown;
  try {
    parseAddress(address);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(AddressError);
  const message = (error as Error).message;
  expect(message).toMatch(why);
  expect(message).toMatch(/^invalid D-Bus address ".*": /);
  expect(message).not.toMatch(/\n/);
});
