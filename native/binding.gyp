{
  "targets": [
    {
      "target_name": "weft",
      "sources": ["weft.c", "common.c", "errname.c", "udp_gso.c", "offload.c", "steer.c", "io_wait.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags": ["-O2"]
        }
      }
    }
  ]
}
