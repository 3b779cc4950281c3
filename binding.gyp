# node-gyp entry point (npm rebuild, electron-rebuild, `node-gyp rebuild`): it drives the same CMake
# build as `npm install` (scripts/build-native.mjs → cmake-js → CMakeLists.txt), so there is one build
# definition. The action's output is the addon node-gyp tools expect at build/Release/moe_eval.node.
# Switches (MOE_EVAL_GPU=cuda|metal|vulkan, MOE_EVAL_PORTABLE=1, MOE_EVAL_LLAMA_CPP_DIR) pass through the environment.
{
  "targets": [
    {
      "target_name": "moe_eval",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_build",
          "inputs": ["<(module_root_dir)/CMakeLists.txt", "<(module_root_dir)/scripts/build-native.mjs"],
          "outputs": ["<(module_root_dir)/build/Release/moe_eval.node"],
          "action": ["node", "<(module_root_dir)/scripts/build-native.mjs"]
        }
      ]
    }
  ]
}
