// PLACEHOLDER until docs/E2EE.md lands: not encryption.
import type { Crypto, Sealed } from "./app";
import type { Connection, Credentials } from "./client";
import type { Conversation } from "./store";

export class E2EE implements Crypto {
  constructor(readonly creds: Credentials) {}
  async prepare(_conn: Connection): Promise<void> {}
  async seal(_conn: Connection, _conv: Conversation, text: string): Promise<Sealed> {
    return { body: new TextEncoder().encode(text) };
  }
  async open(_conn: Connection, _conv: string, _from: string, body: Uint8Array): Promise<string> {
    return new TextDecoder().decode(body);
  }
  devicesChanged(_users: string[]): void {}
}
