/** A request body that was not valid JSON; routes answer it in their own error shape. */
export class InvalidJson {
  readonly reason: string
  constructor(reason: string) {
    this.reason = reason
  }
}
