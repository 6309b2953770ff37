# Included right after llama.cpp's project() inside the llama-cpp-python build (CMAKE_PROJECT_llama.cpp_INCLUDE in the
# Makefile's llama-cpp target). llama-cpp-python forces LLAMA_BUILD_COMMON on for its multimodal library (mtmd), which
# the Makefile does not build (LLAVA_BUILD=OFF), and nothing else in the Python package loads libllama-common. Turning
# it off here, after that FORCE and before llama.cpp reads the option, skips common/ and cpp-httplib: about half of the
# build's CPU time (measured with ninja's log: 862 of 1607 CPU-seconds).
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)
