{
  "targets": [
    {
      "target_name": "sendfile",
      "sources": ["sendfile.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
