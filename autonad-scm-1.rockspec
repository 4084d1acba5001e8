-- autonad: `luarocks make` builds the C core with CMake and installs it with the Lua modules,
-- so that `luajit -e "require 'autonad'"` works from any directory.
rockspec_format = "3.0"
package = "autonad"
version = "scm-1"
source = { url = "git+file:///autonad" }
description = {
    summary = "Automated design of defect-inspection networks (AutoNAD) with a C core for LuaJIT",
    detailed = [[
        A supernet of hybrid token mixers with cross weight sharing, a searchable decoder (MFAM),
        single-path supernet training, a latency-aware prior and evolutionary search, with the
        operators in C11 (OpenBLAS) and the recipes in Lua.
    ]],
    license = "MIT",
}
dependencies = { "lua >= 5.1" }
build = {
    type = "cmake",
    variables = {
        CMAKE_BUILD_TYPE = "Release",
        CMAKE_INSTALL_PREFIX = "$(PREFIX)",
        LUADIR = "$(LUADIR)",
        LIBDIR = "$(LIBDIR)",
        BINDIR = "$(BINDIR)",
        AUTONAD_TESTS = "OFF",
    },
}
