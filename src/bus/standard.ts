import fs from 'node:fs';

export const PROPERTIES = 'org.freedesktop.DBus.Properties';
export const INTROSPECTABLE = 'org.freedesktop.DBus.Introspectable';
export const PEER = 'org.freedesktop.DBus.Peer';
export const OBJECT_MANAGER = 'org.freedesktop.DBus.ObjectManager';
export const DBUS_ERROR = 'org.freedesktop.DBus.Error.';

/** Standard interfaces every object carries, described with the same tables as ours. */
export const STANDARD_XML = `  <interface name="${PEER}">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg name="machine_uuid" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="${INTROSPECTABLE}">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="${PROPERTIES}">
    <method name="Get">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="properties" type="a{sv}" direction="out"/>
    </method>
    <method name="Set">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg name="interface_name" type="s"/>
      <arg name="changed_properties" type="a{sv}"/>
      <arg name="invalidated_properties" type="as"/>
    </signal>
  </interface>`;

export const OBJECT_MANAGER_XML = `  <interface name="${OBJECT_MANAGER}">
    <method name="GetManagedObjects">
      <arg name="objects" type="a{oa{sa{sv}}}" direction="out"/>
    </method>
    <signal name="InterfacesAdded">
      <arg name="object" type="o"/>
      <arg name="interfaces" type="a{sa{sv}}"/>
    </signal>
    <signal name="InterfacesRemoved">
      <arg name="object" type="o"/>
      <arg name="interfaces" type="as"/>
    </signal>
  </interface>`;

let cachedMachineId: string | undefined;

/** The machine's id for Peer.GetMachineId ('' when the file is missing). */
export function machineId(): string {
  if (cachedMachineId === undefined) {
    try {
      cachedMachineId = fs.readFileSync('/etc/machine-id', 'utf8').trim();
    } catch {
      cachedMachineId = '';
    }
  }
  return cachedMachineId;
}
