-- test_supernet_torch.lua: autonad's supernet against the independent PyTorch reference
-- (tests/torch/supernet_ref.py, float64) on the committed cases tests/ref/supernet_case*.ckpt:
-- three subnets that together use every mixer, every decoder conv type and both heads.
-- Logits, loss, the input gradient and every weight gradient must agree to 1e-4 relative
-- (per tensor, against its largest element), and the parameter and MAC counts exactly.
local autonad = require 'autonad'
local ckpt = require 'autonad.checkpoint'
local Supernet = require 'autonad.supernet'
local cost = require 'autonad.supernet.cost'
local T = require 'testing'

local here = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$')
local space = require('autonad.space').load(here .. '/fixtures/space_small.lua')

-- max |a - b| <= tol * max |b| (per tensor)
local function close(a, b, tol, what)
    local al, bl = a:contiguous():tolist(), b:contiguous():tolist()
    T.eq(#al, #bl, what .. ' size')
    local scale, worst = 0, 0
    for i = 1, #bl do scale = math.max(scale, math.abs(bl[i])) end
    for i = 1, #bl do worst = math.max(worst, math.abs(al[i] - bl[i])) end
    if not (worst <= tol * scale) then
        error(string.format('%s: max |diff| %.3g > %g x max |ref| %.3g', what, worst, tol, scale), 0)
    end
end

local function run_case(i)
    local t, meta = ckpt.load(here .. '/../ref/supernet_case' .. i .. '.ckpt')
    local head = meta.head == 'classification' and 'cls' or 'seg'
    local s = require('autonad.arch').copy(space)
    s.decoder.width, s.decoder.groups = meta.decoder_width, meta.groups
    local net = Supernet.new(s, { in_channels = meta.in_channels, classes = meta.classes, head = head })
    net:set_arch(meta.arch)
    net:load_subnet(t, 'supernet_case' .. i)
    local logits = net:forward(t.input)
    close(logits, t.logits, 1e-4, 'logits')
    local loss = net:loss(logits, t.labels)
    T.near(loss, meta.loss, 1e-4, 'loss')
    net:zero_grad()
    -- the input gradient: backward to the image too
    net.stages[1].first = false
    net:backward(net.dlogits)
    close(net.stages[1].patch.dx, t['grad.input'], 1e-4, 'grad.input')
    local grads = net.P:extract('grad')
    local n = 0
    for name, g in pairs(grads) do
        T.ok(t['grad.' .. name], 'reference lacks grad.' .. name)
        close(g, t['grad.' .. name], 1e-4, 'grad.' .. name)
        n = n + 1
    end
    T.eq(net.P:active_numel(), meta.params, 'parameters')
    local c = cost.count(s, meta.arch, { in_channels = meta.in_channels, classes = meta.classes, head = head,
        input = { t.input:size(2), t.input:size(3) } })
    T.eq(c.params, meta.params, 'counted parameters')
    T.eq(c.macs, meta.macs, 'counted MACs')
    return n
end

local tests = {}
function tests.case1_segmentation_mlp_attention_conv() T.ok(run_case(1) > 100) end
function tests.case2_segmentation_dw_slots() T.ok(run_case(2) > 100) end
function tests.case3_classification() T.ok(run_case(3) > 50) end
return tests
