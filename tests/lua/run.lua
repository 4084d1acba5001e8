-- run.lua: the Lua test runner. Runs every tests/lua/test_*.lua (or the files named on the
-- command line); each returns a table of name -> function. Ends with "N passed, M failed".
--   luajit tests/lua/run.lua [test_x.lua ...]       (AUTONAD_LIB picks the core library)
local dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
local root = dir .. '/../..'
package.path = table.concat({ root .. '/lua/?.lua', root .. '/lua/?/init.lua', dir .. '/?.lua', package.path }, ';')

local files = { ... }
if #files == 0 then
    local p = io.popen('ls "' .. dir .. '"/test_*.lua 2>/dev/null')
    for f in p:lines() do files[#files + 1] = f end
    p:close()
end

local passed, failed, skipped = 0, 0, 0
local filter = os.getenv('TEST_FILTER')
for _, file in ipairs(files) do
    if not file:find('/') then file = dir .. '/' .. file end
    local chunk, err = loadfile(file)
    local ok, tests = false, err
    if chunk then ok, tests = pcall(chunk) end
    local short = file:match('([^/]+)%.lua$')
    if not ok then
        failed = failed + 1
        print('FAIL ' .. short .. ' (loading): ' .. tostring(tests))
    else
        local names = {}
        for name in pairs(tests) do names[#names + 1] = name end
        table.sort(names)
        for _, name in ipairs(names) do
            if not filter or (short .. '.' .. name):find(filter, 1, true) then
                local t0 = os.clock()
                local ok2, e = xpcall(tests[name], function(m)
                    if type(m) == 'table' and m.skip then return m end
                    return debug.traceback(tostring(m), 2)
                end)
                if ok2 then
                    passed = passed + 1
                    print(string.format('ok   %s.%s (%.2fs)', short, name, os.clock() - t0))
                elseif type(e) == 'table' and e.skip then
                    skipped = skipped + 1
                    print('skip ' .. short .. '.' .. name .. ': ' .. e.skip)
                else
                    failed = failed + 1
                    print('FAIL ' .. short .. '.' .. name .. ': ' .. tostring(e))
                end
            end
        end
    end
end
print(string.format('lua: %d passed, %d failed, %d skipped', passed, failed, skipped))
os.exit(failed == 0 and 0 or 1)
