-- autonad.space: loads and checks a search space (searchspaces/*.lua or any file). The space
-- is plain data; every check names the key that is wrong.
local M = {}

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'

local CONV_TYPES = { ['1x1'] = true, ['3x3'] = true, ['5x5'] = true, dil3x3 = true, dw3x3 = true }
local OPERATORS = { attention = true, conv = true, mlp = true }

local function fail(key, msg) error('autonad: search space: ' .. key .. ' ' .. msg, 0) end

local function check_list(key, v, item_ok, what)
    if type(v) ~= 'table' or #v == 0 then fail(key, 'must be a non-empty list of ' .. what) end
    for i, x in ipairs(v) do
        if not item_ok(x) then fail(key .. '[' .. i .. ']', 'must be ' .. what .. ', got ' .. tostring(x)) end
    end
end

local function posint(x) return type(x) == 'number' and x >= 1 and x % 1 == 0 end
local function posnum(x) return type(x) == 'number' and x > 0 end

local function check_keys(key, t, allowed)
    for k in pairs(t) do
        if not allowed[k] then
            local names = {}
            for a in pairs(allowed) do names[#names + 1] = a end
            table.sort(names)
            fail(key .. '.' .. tostring(k), 'is not a known key (known: ' .. table.concat(names, ', ') .. ')')
        end
    end
end

--- Checks a space table; returns it with defaults filled in (operators per stage).
function M.check(s)
    if type(s) ~= 'table' then fail('', 'must be a table') end
    check_keys('space', s, { name = true, head_dim = true, operators = true, drop_path = true,
        stages = true, decoder = true })
    if not posint(s.head_dim) then fail('head_dim', 'must be a positive integer') end
    check_list('operators', s.operators, function(x) return OPERATORS[x] end, 'attention, conv or mlp')
    if type(s.drop_path) ~= 'number' or s.drop_path < 0 or s.drop_path >= 1 then
        fail('drop_path', 'must be a number in [0, 1)')
    end
    if type(s.stages) ~= 'table' or #s.stages == 0 then fail('stages', 'must be a non-empty list') end
    for i, st in ipairs(s.stages) do
        local k = 'stages[' .. i .. ']'
        check_keys(k, st, { depth = true, width = true, ratio = true, sr_ratio = true,
            patch_kernel = true, patch_stride = true, operators = true })
        check_list(k .. '.depth', st.depth, posint, 'a positive integer')
        check_list(k .. '.width', st.width, function(x)
            return posint(x) and x % s.head_dim == 0 and x % 4 == 0
        end, 'a positive multiple of head_dim (' .. s.head_dim .. ') and of 4')
        check_list(k .. '.ratio', st.ratio, posnum, 'a positive number')
        if not posint(st.sr_ratio) then fail(k .. '.sr_ratio', 'must be a positive integer') end
        if not posint(st.patch_kernel) then fail(k .. '.patch_kernel', 'must be a positive integer') end
        if not posint(st.patch_stride) then fail(k .. '.patch_stride', 'must be a positive integer') end
        st.operators = st.operators or s.operators
        check_list(k .. '.operators', st.operators, function(x) return OPERATORS[x] end, 'attention, conv or mlp')
    end
    local d = s.decoder
    if type(d) ~= 'table' then fail('decoder', 'must be a table') end
    check_keys('decoder', d, { width = true, groups = true, conv_types = true, slots = true, pool_sizes = true })
    if not posint(d.width) then fail('decoder.width', 'must be a positive integer') end
    if not posint(d.groups) or d.width % d.groups ~= 0 then
        fail('decoder.groups', 'must be a positive integer dividing decoder.width')
    end
    check_list('decoder.conv_types', d.conv_types, function(x) return CONV_TYPES[x] end,
        'one of 1x1, 3x3, 5x5, dil3x3, dw3x3')
    check_list('decoder.slots', d.slots, function(x) return type(x) == 'string' end, 'a slot name')
    -- the MFAM slots: 4 PPM convs, and a lateral and an output conv for every stage but the last
    local S, want = #s.stages, { ppm1 = true, ppm2 = true, ppm3 = true, ppm4 = true }
    if S < 2 then fail('stages', 'must list at least 2 stages') end
    for i = 1, S - 1 do want['lateral' .. i], want['out' .. i] = true, true end
    local seen = {}
    for i, name in ipairs(d.slots) do
        if not want[name] or seen[name] then
            fail('decoder.slots[' .. i .. ']', "'" .. name .. "' is not a slot of a " .. S .. '-stage MFAM or is listed twice')
        end
        seen[name] = true
    end
    if #d.slots ~= 4 + 2 * (S - 1) then
        fail('decoder.slots', 'must name the ' .. (4 + 2 * (S - 1)) .. ' MFAM slots of ' .. S ..
            ' stages (ppm1..ppm4, lateral1..' .. (S - 1) .. ', out1..' .. (S - 1) .. ')')
    end
    if type(d.pool_sizes) ~= 'table' or #d.pool_sizes ~= 4 then
        fail('decoder.pool_sizes', 'must list choices for the 4 PPM branches')
    end
    for i, p in ipairs(d.pool_sizes) do check_list('decoder.pool_sizes[' .. i .. ']', p, posint, 'a positive integer') end
    return s
end

--- Loads a space by name (searchspaces/<name>.lua) or path; returns the checked table.
function M.load(name_or_path)
    local candidates = { name_or_path,
        here .. '/../../searchspaces/' .. name_or_path .. '.lua',
        here .. '/searchspaces/' .. name_or_path .. '.lua' }
    for _, p in ipairs(candidates) do
        local f = io.open(p, 'r')
        if f then
            f:close()
            local chunk, err = loadfile(p)
            if not chunk then error('autonad: search space ' .. p .. ': ' .. err, 0) end
            return M.check(chunk())
        end
    end
    error('autonad: no search space "' .. name_or_path .. '" (looked for a file and in searchspaces/)', 0)
end

return M
