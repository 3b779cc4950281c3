/** What the addon was built with and can compute on: llama.cpp's system info line, and ggml's devices. */
import { type NativeDevice, native } from './native.js';

export type Device = NativeDevice;

/** llama.cpp's system info line (backends, CPU features), as llama.cpp's tools print it. */
export function systemInfo(): string {
  return native().systemInfo();
}

/**
 * The devices this build computes on, from ggml's backend registry: name (as Model.info.placement
 * names it), description, backend, type and memory. A CPU build has one, 'CPU'; a Vulkan build adds
 * 'Vulkan0'… (Mesa's lavapipe CPU device only with GGML_VK_VISIBLE_DEVICES set); --rpc servers add 'RPC…'.
 */
export function devices(): Device[] {
  return native().devices();
}
