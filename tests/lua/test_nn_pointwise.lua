-- test_nn_pointwise.lua: the pointwise layers and functional ops through the FFI: shapes and
-- values against small hand computations, backward wiring, training / evaluation behaviour,
-- and C errors surfacing as Lua errors.
local autonad = require 'autonad'
local nn = autonad.nn
local ops = require 'autonad.ops'
local T = require 'testing'

local tests = {}

-- x[1,H,W,C] with x[h][w][c] = f(h, w, c) (1-based)
local function map(H, W, Cn, f)
    local x = autonad.tensor(1, H, W, Cn)
    for h = 1, H do for w = 1, W do for c = 1, Cn do x:set(f(h, w, c), 1, h, w, c) end end end
    return x
end

function tests.ops_add_mul_scale_broadcast()
    local a = autonad.from_table({ { 1, 2, 3 }, { 4, 5, 6 } })
    local b = autonad.from_table({ { 10, 20, 30 } })
    T.all_near(ops.add(1, a, 2, b):tolist(), { 21, 42, 63, 24, 45, 66 })
    T.all_near(ops.mul(a, b):tolist(), { 10, 40, 90, 40, 100, 180 })
    T.all_near(ops.scale(-1, a):tolist(), { -1, -2, -3, -4, -5, -6 })
    local da, db = autonad.tensor(), autonad.tensor(1, 3)
    ops.mul_backward(a, b, autonad.from_table({ { 1, 1, 1 }, { 1, 1, 1 } }), da, db)
    T.all_near(da:tolist(), { 10, 20, 30, 10, 20, 30 })
    T.all_near(db:tolist(), { 5, 7, 9 })
    ops.add(1, a, 1, b, a) -- in place
    T.all_near(a:tolist(), { 11, 22, 33, 14, 25, 36 })
    T.errors(function() ops.add(1, a, 1, autonad.tensor(3, 3)) end,
        'add: b [3,3] does not broadcast to a [2,3]')
end

function tests.ops_concat_split_round_trip()
    local a = autonad.from_table({ { 1, 2 }, { 3, 4 } })
    local b = autonad.from_table({ { 5 }, { 6 } })
    local y = ops.concat({ a, b }, 2)
    T.eq(y:size(2), 3)
    T.all_near(y:tolist(), { 1, 2, 5, 3, 4, 6 })
    local parts = ops.split(y, 2, { 2, 1 })
    T.all_near(parts[1]:tolist(), a:tolist())
    T.all_near(parts[2]:tolist(), b:tolist())
    T.errors(function() ops.split(y, 2, { 1, 1 }) end, 'split: sizes add up to 2 but y has 3 along dim 1')
end

function tests.avgpool_and_adaptive_pool()
    local x = map(4, 4, 2, function(h, w, c) return (h - 1) * 4 + w + 100 * (c - 1) end)
    local p = nn.AvgPool2d(2)
    local y = p:forward(x)
    T.eq(y:size(2), 2); T.eq(y:size(3), 2)
    T.near(y:get(1, 1, 1, 1), (1 + 2 + 5 + 6) / 4)
    T.near(y:get(1, 2, 2, 2), (11 + 12 + 15 + 16) / 4 + 100)
    local dx = p:backward(x, autonad.tensor(1, 2, 2, 2):fill(4))
    T.near(dx:get(1, 3, 3, 1), 1)
    local g = nn.AdaptiveAvgPool2d(1)
    local m = g:forward(x)
    T.near(m:get(1, 1, 1, 1), 8.5)
    T.near(m:get(1, 1, 1, 2), 108.5)
    local a = nn.AdaptiveAvgPool2d({ 3, 2 }):forward(x)
    T.eq(a:size(2), 3); T.eq(a:size(3), 2)
    T.near(a:get(1, 2, 1, 1), (5 + 6 + 9 + 10) / 4) -- rows [1, 3), cols [0, 2)
    T.errors(function() nn.AvgPool2d(5):forward(x) end, 'avgpool2d_forward: x is 4x4, smaller than the 5x5 window')
end

function tests.upsample_bilinear_both_alignments()
    local x = map(2, 2, 1, function(h, w) return (h - 1) * 2 + (w - 1) end) -- 0 1 / 2 3
    local up = nn.Upsample({ size = 3, align_corners = true })
    local y = up:forward(x)
    T.all_near(y:tolist(), { 0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3 })
    local dx = up:backward(x, autonad.tensor(1, 3, 3, 1):fill(1))
    T.near(dx:sum(), 9, 1e-5)
    local up2 = nn.Upsample({ size = { 4, 4 } })
    local z = up2:forward(x)
    T.near(z:get(1, 1, 1, 1), 0)          -- clamped at the border
    T.near(z:get(1, 2, 2, 1), 0.75)       -- src 0.25 in both dims: 0.25 * 1 + 0.25 * 2
    T.eq(up2:forward(x, { 2, 3 }):size(3), 3)
    T.errors(function() nn.Upsample():forward(x) end, 'Upsample needs a size')
end

function tests.shift_presets_and_errors()
    local x = map(3, 3, 4, function(h, w, c) return 10 * h + w + 100 * c end)
    local s = nn.Shift('shift1')
    local y = s:forward(x)
    T.eq(y:get(1, 2, 2, 1), x:get(1, 1, 2, 1)) -- down
    T.eq(y:get(1, 1, 2, 1), x:get(1, 1, 2, 1)) -- vacated row keeps its value
    T.eq(y:get(1, 2, 2, 2), x:get(1, 3, 2, 2)) -- up
    T.eq(y:get(1, 2, 2, 3), x:get(1, 2, 1, 3)) -- right
    T.eq(y:get(1, 2, 2, 4), x:get(1, 2, 3, 4)) -- left
    local dx = s:backward(x, autonad.tensor(1, 3, 3, 4):fill(1))
    T.near(dx:sum(), 36)
    T.eq(nn.Shift('shift2'):forward(x):get(1, 2, 2, 1), x:get(1, 2, 1, 1)) -- right
    T.errors(function() nn.Shift('sideways') end, "Shift preset 'sideways'")
    T.errors(function() nn.Shift('shift1'):forward(autonad.tensor(1, 2, 2, 6)) end,
        'shift_forward: x has 6 channels, not divisible by 4')
end

function tests.droppath_training_seed_and_identity()
    local x = autonad.tensor(64, 3):fill(1)
    local d = nn.DropPath(0.5, { rng = autonad.rng(3) })
    local y = d:forward(x)
    local kept, vals = 0, y:tolist()
    for n = 0, 63 do
        T.eq(vals[3 * n + 1], vals[3 * n + 3])
        if vals[3 * n + 1] ~= 0 then kept = kept + 1; T.near(vals[3 * n + 1], 2) end
    end
    T.ok(kept > 16 and kept < 48, 'kept ' .. kept)
    local dx = d:backward(x, autonad.tensor(64, 3):fill(1))
    T.all_near(dx:tolist(), vals)
    local again = nn.DropPath(0.5, { rng = autonad.rng(3) }):forward(x)
    T.all_near(again:tolist(), vals, 0)
    d:evaluate()
    T.ok(d:forward(x) == x, 'identity when not training')
    local g = autonad.tensor(64, 3)
    T.ok(d:backward(x, g) == g)
    d:training()
    T.ok(d:forward(x) ~= x)
    T.errors(function() nn.DropPath(2) end, 'DropPath p must be in [0, 1]')
end

function tests.cross_entropy_criterion()
    local logits = autonad.from_table({ { 2, 0, 0 }, { 0, 0, 0 }, { 1, 1, 5 } })
    local labels = autonad.from_table({ 0, 255, 2 })
    local ce = nn.CrossEntropy()
    local loss = ce:forward(logits, labels)
    local l1 = math.log(math.exp(2) + 2) - 2
    local l3 = math.log(2 * math.exp(1) + math.exp(5)) - 5
    T.near(loss, (l1 + l3) / 2, 1e-6)
    local d = ce:backward(logits, labels)
    T.near(d:get(1, 1), (math.exp(2) / (math.exp(2) + 2) - 1) / 2, 1e-6)
    T.all_near({ d:get(2, 1), d:get(2, 2), d:get(2, 3) }, { 0, 0, 0 })
    local d12 = d:get(1, 2)
    local d3 = ce:backward(logits, labels, 3) -- the same buffer, rewritten
    T.near(d3:get(1, 2), 3 * d12, 1e-6)
    T.errors(function() ce:forward(logits, autonad.from_table({ 0, 3, 1 })) end,
        'cross_entropy_forward: label 3 at row 1 is not a class in [0, 3)')
    T.near(nn.CrossEntropy({ ignore_label = -1 }):forward(logits, autonad.from_table({ 0, -1, 2 })),
        (l1 + l3) / 2, 1e-6)
end

return tests
