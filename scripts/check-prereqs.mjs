#!/usr/bin/env node
// What `npm test` needs on this machine besides Node (README, "Setup"), checked up front with one message:
// CMake ≥ 3.19, a C++17 compiler and git for the native build and llama.cpp's peer tools, and Chromium
// for the tests that render the HTML report in a real browser. `npm install` alone needs no Chromium.
// `vulkan` (npm run test:vulkan): the Vulkan headers and loader, glslc, and a Vulkan driver instead.
//   node scripts/check-prereqs.mjs [--for install|test|vulkan]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const forVulkan = process.argv.includes('vulkan');
const forTest = !process.argv.includes('install') && !forVulkan;
const missing = [];
const version = (cmd, args = ['--version']) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? (r.stdout || r.stderr) : null;
};

const cmake = version('cmake');
const m = cmake && /cmake version (\d+)\.(\d+)/.exec(cmake);
if (!m) missing.push('CMake ≥ 3.19 (Debian/Ubuntu: apt-get install cmake)');
else if (Number(m[1]) < 3 || (Number(m[1]) === 3 && Number(m[2]) < 19)) missing.push(`CMake ≥ 3.19 (found ${m[1]}.${m[2]})`);
if (!['c++', 'g++', 'clang++'].some((c) => version(c))) missing.push('a C++17 compiler (apt-get install g++)');
if (!version('git')) missing.push('git (apt-get install git)');
if (forTest) {
  const chromium = process.env.CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
  if (!chromium || !existsSync(chromium)) missing.push('Chromium, for the tests that render the HTML report (apt-get install chromium; or set CHROMIUM=/path/to/chrome)');
}
if (forVulkan) {
  const apt = 'Debian/Ubuntu: apt-get install libvulkan-dev glslc glslang-tools spirv-headers mesa-vulkan-drivers';
  if (!version('glslc')) missing.push(`glslc, the GLSL to SPIR-V compiler (${apt})`);
  if (!['/usr/include/vulkan/vulkan.hpp', '/usr/local/include/vulkan/vulkan.hpp'].some((p) => existsSync(p)) && !process.env.VULKAN_SDK) {
    missing.push(`the Vulkan headers (${apt}; or set VULKAN_SDK)`);
  }
  const icds = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'];
  if (!icds.some((p) => existsSync(p)) && !process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES) {
    missing.push(`a Vulkan driver (a GPU's, or Mesa's CPU driver lavapipe: ${apt})`);
  }
}

if (missing.length) {
  process.stderr.write(`moe-eval: ${forVulkan ? 'npm run test:vulkan' : forTest ? 'npm test' : 'the build'} needs what this machine lacks:\n${missing.map((x) => `  - ${x}`).join('\n')}\n`);
  process.exit(1);
}
