/** A value with its own type signature (D-Bus `v`): what `a{sv}` dicts and `Properties.Get` hold. */
export class Variant<T = unknown> {
  constructor(
    readonly signature: string,
    readonly value: T,
  ) {}
}
