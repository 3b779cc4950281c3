/** What the addon was built with: llama.cpp's system info line (backends, CPU features). */
import { native } from './native.js';

export function systemInfo(): string {
  return native().systemInfo();
}
