-- test_supernet.lua: the supernet on a tiny space: shapes, exact parameter counts, subnet
-- extraction, gradients against finite differences for every mixer and decoder conv type,
-- gradients landing only in the active slices, and reproducibility.
local autonad = require 'autonad'
local arch = require 'autonad.arch'
local Supernet = require 'autonad.supernet'
local cost = require 'autonad.supernet.cost'
local T = require 'testing'

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$')
local space = require('autonad.space').load(here .. '/fixtures/space_tiny.lua')

local tests = {}

local function make(head, classes, cin, seed)
    return Supernet.new(space, { in_channels = cin or 1, classes = classes or 3, head = head or 'seg', seed = seed or 1 })
end

local function input(n, h, w, c, seed)
    local x = autonad.tensor(n, h, w, c)
    autonad.rng(seed or 7):normal_(x)
    return x
end

local function labels_for(logits, seed, ignore_every)
    local n = logits:numel() / logits:size(logits:dim())
    local l = autonad.tensor(n)
    local r = autonad.rng(seed or 11)
    for i = 1, n do
        l:set(r:randint(0, logits:size(logits:dim()) - 1), i)
        if ignore_every and i % ignore_every == 0 then l:set(255, i) end
    end
    return l
end

-- an architecture of the tiny space with the given operator and conv type everywhere
local function uniform_arch(op, conv)
    local a = arch.largest(space)
    for s = 1, #a.op do for b = 1, #a.op[s] do a.op[s][b] = op end end
    for i = 1, #a.decoder.conv do a.decoder.conv[i] = conv end
    return a
end

function tests.forward_shapes_seg_and_cls()
    local net = make('seg', 3)
    net:set_arch(arch.sample(space, autonad.rng(1)))
    local y = net:forward(input(2, 48, 40, 1))
    T.eq(table.concat(y:size(), 'x'), '2x48x40x3')
    local cls = make('cls', 5, 3)
    cls:set_arch(arch.sample(space, autonad.rng(2)))
    T.eq(table.concat(cls:forward(input(2, 32, 32, 3)):size(), 'x'), '2x5')
end

function tests.parameter_counts_are_exact()
    local rng = autonad.rng(3)
    for _, head in ipairs({ 'seg', 'cls' }) do
        local net = make(head, 4)
        for _ = 1, 10 do
            local a = arch.sample(space, rng)
            net:set_arch(a)
            local c = cost.count(space, a, { in_channels = 1, classes = 4, head = head, input = { 32, 32 } })
            T.eq(net.P:active_numel(), c.params, head .. ' ' .. arch.key(a))
        end
    end
end

function tests.extracted_subnet_equals_the_supernet()
    local net = make('seg', 3)
    local x = input(2, 32, 32, 1)
    for _, a in ipairs({ uniform_arch('conv', 'dw3x3'), arch.sample(space, autonad.rng(4)) }) do
        net:set_arch(a)
        local y = net:forward(x):clone()
        local sub = net:extract()
        T.all_near(sub:forward(x), y, 1e-6)
        T.ok(sub.P:active_numel() == net.P:active_numel())
    end
end

-- L = sum(logits * r). Checks dL/dw for weight `name` by central differences along two
-- directions: the gradient itself (the largest signal a float32 loss can resolve) and a
-- random one; both must match the analytic directional derivative g.d.
local function gradcheck(net, x, name, tol)
    local logits = net:forward(x)
    local r = logits:clone()
    autonad.rng(5):normal_(r)
    net.P:zero_all_grad()
    net:backward(r)
    local e = net.P.by_name[name]
    T.ok(e and e.view, name .. ' is active')
    local v = e.view(e.value)
    local w, g = v:clone(), e.view(e.grad):clone():tolist()
    local n = #g
    local function loss()
        local y = net:forward(x):contiguous()
        local acc, yd, rd = 0, y:data(), r:data()
        for i = 0, y:numel() - 1 do acc = acc + yd[i] * rd[i] end
        return acc
    end
    local gnorm, wnorm = 0, 0
    local wl = w:tolist()
    for i = 1, n do gnorm = gnorm + g[i] ^ 2; wnorm = wnorm + wl[i] ^ 2 end
    gnorm, wnorm = math.sqrt(gnorm), math.sqrt(wnorm)
    T.ok(gnorm > 0, name .. ' has a zero gradient (n ' .. n .. ', sum ' .. e.view(e.grad):sum() .. ')')
    local rnd = autonad.tensor(n); autonad.rng(13):normal_(rnd)
    local rl, rnorm = rnd:tolist(), 0
    for i = 1, n do rnorm = rnorm + rl[i] ^ 2 end
    rnorm = math.sqrt(rnorm)
    local h = (net.head_kind == "cls" and 1e-2 or 1e-3) * math.max(wnorm, 1e-2)
    for _, dir in ipairs({ 'gradient', 'random' }) do
        local d, expect = {}, 0
        for i = 1, n do
            d[i] = dir == 'gradient' and g[i] / gnorm or rl[i] / rnorm
            expect = expect + g[i] * d[i]
        end
        local flat = w:clone()
        local function set(sign)
            local f = flat:view(n)
            for i = 1, n do f:set(wl[i] + sign * h * d[i], i) end
            v:copy(flat)
        end
        set(1); local lp = loss()
        set(-1); local lm = loss()
        v:copy(w)
        local num = (lp - lm) / (2 * h)
        if math.abs(num - expect) > tol * gnorm then
            error(string.format('%s along the %s: numeric %.6g analytic %.6g (|g| %.3g)', name, dir, num, expect, gnorm), 0)
        end
    end
end

-- Encoder weights are checked through the classification head: no ReLU anywhere on that
-- path, so the loss is smooth and float32 differences resolve the gradient. Decoder weights
-- (GroupNorm + ReLU) are checked away from the PPM, whose GroupNorms over 1x1 and 2x2 pooled
-- maps make the loss too sharp for float32 differences; the mlp mixer's reweight layers have
-- gradients below float32 resolution here. test_supernet_torch.lua checks all of them
-- exactly against the float64 PyTorch reference; this test guards the pieces independently.
local function check_arch(a, names, head)
    local net = make(head or 'cls', 3)
    net:set_arch(a)
    local x = input(1, 32, 32, 1)
    for _, name in ipairs(names) do gradcheck(net, x, name, net.head_kind == 'cls' and 0.05 or 0.05) end
end

function tests.gradients_attention()
    check_arch(uniform_arch('attention', '3x3'), { 'stage1.block1.q.weight', 'stage1.block1.kv.weight',
        'stage1.block1.sr.weight', 'stage2.block1.sr_norm.weight', 'stage3.block1.proj.bias',
        'stage1.patch.weight', 'stage2.block2.fc1.weight', 'stage2.block1.dw.weight' })
end

function tests.gradients_decoder_3x3_5x5_dil()
    local a = uniform_arch('attention', '3x3')
    a.decoder.conv[3], a.decoder.conv[5], a.decoder.conv[9] = '5x5', 'dil3x3', 'dil3x3'
    check_arch(a, { 'dec.lateral3.weight', 'dec.out2.weight', 'dec.out1.weight',
        'dec.seg1.weight', 'dec.fuse.gn.bias' }, 'seg')
end

function tests.gradients_conv_mixer()
    check_arch(uniform_arch('conv', '5x5'), { 'stage1.block1.fc.weight', 'stage1.block1.dep.weight',
        'stage2.block1.conv_norm.weight', 'stage2.block2.q.weight', 'stage2.block2.kv.bias' })
end

function tests.gradients_mlp_mixer()
    check_arch(uniform_arch('mlp', 'dil3x3'), { 'stage2.block1.mlp.weight', 'stage2.block2.q.weight', 'stage1.block1.kv.weight' })
end

function tests.gradients_decoder_dw_and_1x1()
    local a = uniform_arch('attention', 'dw3x3')
    a.decoder.conv[8] = '1x1'
    check_arch(a, { 'dec.lateral3.weight', 'dec.lateral3.pw',
        'dec.out1.weight', 'dec.fuse.weight', 'dec.seg2.bias', 'head.out_conv.weight', 'dec.ppm_out.gn.weight' }, 'seg')
end

function tests.gradients_cls_head()
    check_arch(uniform_arch('conv', '1x1'), { 'cls.fc1.weight', 'cls.fc4.weight', 'cls.bias', 'stage4.norm.weight' }, 'cls')
end

function tests.gradients_land_only_in_active_views()
    local net = make('seg', 3)
    local a = arch.smallest(space)
    net:set_arch(a)
    net.P:zero_all_grad()
    local y = net:forward(input(1, 32, 32, 1))
    net:backward(y)
    for _, e in ipairs(net.P.list) do
        local total = 0
        for _, v in ipairs(e.grad:tolist()) do total = total + math.abs(v) end
        local active = e.view and e.view(e.grad):tolist() or {}
        local inside = 0
        for _, v in ipairs(active) do inside = inside + math.abs(v) end
        T.near(total, inside, 1e-6, e.name .. ' has gradient outside its active view')
    end
end

function tests.same_seed_same_logits()
    local a = arch.sample(space, autonad.rng(9))
    local n1, n2 = make('seg', 3, 1, 5), make('seg', 3, 1, 5)
    n1:set_arch(a); n2:set_arch(a)
    local x = input(1, 32, 32, 1)
    T.all_near(n1:forward(x), n2:forward(x), 0)
end

function tests.a_three_stage_space_with_a_fixed_decoder()
    local s3 = require('autonad.space').load(here .. '/fixtures/space_3stage.lua')
    local net = Supernet.new(s3, { in_channels = 1, classes = 3, head = 'seg', seed = 2 })
    local rng = autonad.rng(4)
    for _ = 1, 3 do
        local a = arch.sample(s3, rng)
        T.eq(#a.decoder.conv, 8)
        net:set_arch(a)
        local y = net:forward(input(2, 32, 32, 1))
        T.eq(table.concat(y:size(), 'x'), '2x32x32x3')
        net:backward(y)
        local c = cost.count(s3, a, { in_channels = 1, classes = 3, head = 'seg', input = { 32, 32 } })
        T.eq(net.P:active_numel(), c.params)
        for s = 1, #a.op do for b = 1, #a.op[s] do T.ok(a.op[s][b] ~= 'attention') end end
    end
    local x = input(1, 32, 32, 1)
    local y = net:forward(x):clone()
    T.all_near(net:extract():forward(x), y, 1e-6)
    -- the latency table covers it too
    local lat = require 'autonad.latency'
    local tbl = lat.build_table(s3, { input = { 32, 32 }, warmup = 1, repeats = 3, min_sample_ms = 0 })
    T.ok(lat.predict(tbl, arch.sample(s3, rng)) > 0)
end

-- The memory plan (supernet/buffers.lua): with gradients off the forward shares its buffers
-- between blocks and decoder steps; the logits must not change by a bit. Switching back on
-- must give the gradients of a net that never switched (the shared gradient pools hold no
-- state between steps), and a backward after a forward without gradients is refused.
-- Without gradients the head's resize and final conv are one operator for 2-8 classes (the
-- few-channel path); one class (a depthwise conv) and 9 run the two operators: the logits are
-- those of the forward with gradients in every case.
function tests.head_without_gradients_any_class_count()
    local rng = autonad.rng(22)
    local x = input(2, 40, 36, 1, 6)
    for _, k in ipairs({ 1, 2, 8, 9 }) do
        local a = arch.sample(space, rng)
        local ref, net = make('seg', k), make('seg', k)
        ref:set_arch(a); net:set_arch(a)
        local want = ref:forward(x):clone()
        net:set_grad_enabled(false)
        local got = net:forward(x)
        T.eq(got:size(4), k, k .. ' classes')
        T.all_near(got, want, 0, k .. ' classes: logits without gradients')
    end
end

function tests.gradients_off_same_logits_and_gradients_after()
    local rng = autonad.rng(21)
    local archs = {}
    for _, op in ipairs({ 'attention', 'conv', 'mlp' }) do
        for _, conv in ipairs({ '1x1', '3x3', '5x5', 'dil3x3', 'dw3x3' }) do
            archs[#archs + 1] = { 'seg', uniform_arch(op, conv) }
        end
    end
    for _ = 1, 4 do archs[#archs + 1] = { 'seg', arch.sample(space, rng) } end
    for _ = 1, 3 do archs[#archs + 1] = { 'cls', arch.sample(space, rng) } end
    local x = input(2, 48, 40, 1, 5)
    local nets = { seg = { make('seg', 3), make('seg', 3) }, cls = { make('cls', 3), make('cls', 3) } }
    for i, c in ipairs(archs) do
        local ref, net = nets[c[1]][1], nets[c[1]][2]
        ref:set_arch(c[2]); net:set_arch(c[2])
        local want = ref:forward(x):clone()
        T.eq(net:set_grad_enabled(false), true, 'previous setting')
        T.all_near(net:forward(x), want, 0, 'arch ' .. i .. ' logits without gradients')
        T.errors(function() net:backward(want) end, 'backward after a forward with gradients off')
        net:set_grad_enabled(true)
        local labels = labels_for(want, i)
        for _, n in ipairs({ ref, net }) do
            n:zero_grad()
            n:loss(n:forward(x), labels)
            n:backward(n.dlogits)
        end
        local g1, g2 = ref.P:extract('grad'), net.P:extract('grad')
        for name, g in pairs(g1) do T.all_near(g2[name], g, 0, 'arch ' .. i .. ' grad ' .. name) end
    end
end

function tests.bad_architecture_names_the_gene()
    local net = make('seg', 3)
    local a = arch.largest(space)
    a.width[2] = 96
    T.errors(function() net:set_arch(a) end, 'arch.width[2]: 96 is not one of 32, 64')
end

return tests
