/* main.c: the `autonad` command, a small C host that embeds LuaJIT and hands its arguments to
   lua/autonad/cli.lua. It finds the Lua modules and the core library in the build tree when
   run from there, else where `cmake --install` or luarocks put them. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    /* errors raised by autonad for bad input are plain messages: no Lua stack for users */
    if (msg && strncmp(msg, "autonad: ", 9) == 0 && !getenv("AUTONAD_TRACEBACK")) return 1;
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

int main(int argc, char **argv)
{
    const char *lua_dir = exists(AUTONAD_SOURCE_LUA "/autonad/init.lua") ? AUTONAD_SOURCE_LUA
                                                                          : AUTONAD_INSTALL_LUA;
    if (!getenv("AUTONAD_LIB"))
        setenv("AUTONAD_LIB", exists(AUTONAD_BUILD_LIB) ? AUTONAD_BUILD_LIB : AUTONAD_INSTALL_LIB, 1);

    lua_State *L = luaL_newstate();
    if (!L) {
        fputs("autonad: cannot create the Lua state\n", stderr);
        return 1;
    }
    luaL_openlibs(L);

    /* package.path = <lua_dir>/?.lua;<lua_dir>/?/init.lua;<old path> */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", lua_dir, lua_dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);

    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, traceback);
    lua_getglobal(L, "require");
    lua_pushstring(L, "autonad.cli");
    int rc = lua_pcall(L, 1, 1, 1);
    if (rc == 0) {
        lua_getfield(L, -1, "main");
        lua_getglobal(L, "arg");
        rc = lua_pcall(L, 1, 1, 1);
    }
    int status = 0;
    if (rc != 0) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        status = 1;
    } else if (lua_isnumber(L, -1)) {
        status = (int)lua_tointeger(L, -1);
    }
    lua_close(L);
    return status;
}
