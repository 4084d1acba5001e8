-- test_tensor.lua: tensors through the FFI: creation, views, slices that share storage,
-- copies, the random generator's reproducibility, and C errors surfacing in Lua.
local autonad = require 'autonad'
local T = require 'testing'

local tests = {}

function tests.from_table_round_trips()
    local t = autonad.from_table({ { 1, 2, 3 }, { 4, 5, 6 } })
    T.eq(t:dim(), 2); T.eq(t:size(1), 2); T.eq(t:size(2), 3)
    T.eq(t:get(2, 3), 6)
    T.all_near(t:tolist(), { 1, 2, 3, 4, 5, 6 })
    T.eq(t:totable()[2][1], 4)
end

function tests.narrow_is_a_view_on_the_same_storage()
    local w = autonad.from_table({ { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } })
    local s = w:narrow(1, 1, 2):narrow(2, 1, 2)   -- W[:2, :2]
    T.ok(s:same_storage(w))
    T.ok(not s:is_contiguous())
    T.all_near(s:tolist(), { 1, 2, 4, 5 })
    s:fill(0)
    T.all_near(w:tolist(), { 0, 0, 3, 0, 0, 6, 7, 8, 9 })
end

function tests.permute_and_view()
    local t = autonad.from_table({ { 1, 2, 3 }, { 4, 5, 6 } })
    local p = t:permute(2, 1)
    T.all_near(p:tolist(), { 1, 4, 2, 5, 3, 6 })
    T.all_near(t:view(3, 2):totable()[3], { 5, 6 })
    T.errors(function() p:view(6) end, 'tensor_reshape: t must be contiguous')
end

function tests.diagonal_and_unsqueeze_views()
    -- w[o, k, i] with o = 3, k = 2, i = 3: the depthwise kernel is w[c, :, c]
    local w = autonad.tensor(3, 2, 3)
    for o = 1, 3 do for k = 1, 2 do for i = 1, 3 do w:set(100 * o + 10 * k + i, o, k, i) end end end
    local d = w:diagonal(1, 3)            -- [2, 3]: d[k][c] = w[c, k, c]
    T.eq(d:size(1), 2); T.eq(d:size(2), 3)
    T.eq(d:get(2, 3), 323)
    local u = d:permute(2, 1):unsqueeze(3) -- [3, 2, 1]
    T.eq(u:dim(), 3); T.eq(u:get(2, 1, 1), 212)
    u:fill(0)
    T.eq(w:get(2, 1, 2), 0); T.eq(w:get(2, 1, 1), 211)
    T.errors(function() w:diagonal(1, 1) end, 'tensor_diagonal: dims 0 and 0 are not two distinct dims')
end

function tests.resize_reuses_storage()
    local t = autonad.tensor(4, 4)
    local p = t:data()
    t:resize(2, 8)
    T.ok(t:data() == p, 'same storage after a same-size resize')
    t:resize(2, 2)
    T.ok(t:data() == p, 'same storage after shrinking')
    T.eq(t:numel(), 4)
end

function tests.resize_of_a_slice_is_refused()
    local t = autonad.tensor(4, 4)
    local s = t:narrow(1, 2, 2)
    T.errors(function() s:resize(3, 3) end, 'tensor_resize: t is a strided or offset view')
end

function tests.c_errors_become_lua_errors_with_the_message()
    local t = autonad.tensor(2, 3)
    T.errors(function() t:narrow(2, 3, 2) end, 'tensor_narrow: [2, 4) is outside dim 1 of size 3')
    T.errors(function() autonad.tensor(2, 3):copy(autonad.tensor(3, 2)) end,
        'tensor_copy: dst is [2,3] but src is [3,2]')
end

function tests.same_seed_same_bits()
    local a, b = autonad.tensor(1000), autonad.tensor(1000)
    autonad.rng(7):normal_(a)
    autonad.rng(7):normal_(b)
    T.all_near(a:tolist(), b:tolist(), 0)
    local c = autonad.tensor(1000)
    autonad.rng(8):normal_(c)
    T.ok(a:get(1) ~= c:get(1))
end

function tests.random_fill_does_not_depend_on_threads()
    local n = autonad.get_num_threads()
    local a, b = autonad.tensor(300, 301), autonad.tensor(300, 301)
    autonad.set_num_threads(1); autonad.rng(3):uniform_(a, -1, 1)
    autonad.set_num_threads(2); autonad.rng(3):uniform_(b, -1, 1)
    autonad.set_num_threads(n)
    T.eq(a:sum(), b:sum())
end

function tests.normal_has_the_right_moments()
    local t = autonad.tensor(100000)
    autonad.rng(1):normal_(t, 2, 3)
    local mean = t:sum() / t:numel()
    local v, var = t:tolist(), 0
    for i = 1, #v do var = var + (v[i] - mean) ^ 2 end
    var = var / #v
    T.near(mean, 2, 0.02)
    T.near(math.sqrt(var), 3, 0.01)
end

function tests.rng_state_round_trips()
    local r = autonad.rng(42)
    r:random(); r:random()
    local s = r:state()
    local x = r:random()
    local r2 = autonad.rng(0):set_state(s)
    T.eq(r2:random(), x)
    T.eq(s.seed, '42')
end

return tests
