-- autonad.nn.Conv2d: 2-D convolution on channels-last maps, x[N,H,W,Ci] -> y[N,Ho,Wo,Co],
-- weight [Co,K,K,Ci/groups], bias [Co]; mirrors core/ops/conv2d.c.
--   nn.Conv2d(in, out, k, {stride=1, pad=0, dilation=1, groups=1, bias=true, rng=...,
--                          grad_input=true, workspace=...})
-- grad_input = false skips dx (the first layer of a network): backward then returns nil.
local ffi = require 'ffi'
local class = require 'autonad.class'
local core = require 'autonad.ffi'
local tensor = require 'autonad.tensor'
local random = require 'autonad.random'
local Module = require 'autonad.nn.Module'
local C, check = core.C, core.check

local Conv2d = class('Conv2d', Module)

local known = { stride = true, pad = true, dilation = true, groups = true, bias = true, rng = true,
                grad_input = true, workspace = true }

local function int_arg(name, v, min)
    if type(v) ~= 'number' or v % 1 ~= 0 or v < min then
        error('autonad: nn.Conv2d: ' .. name .. ' must be an integer >= ' .. min .. ', got ' .. tostring(v), 4)
    end
    return v
end

function Conv2d:init(cin, cout, k, opts)
    Module.init(self)
    opts = opts or {}
    for key in pairs(opts) do
        if not known[key] then error('autonad: nn.Conv2d: unknown option ' .. tostring(key), 3) end
    end
    int_arg('in', cin, 1)
    int_arg('out', cout, 1)
    int_arg('k', k, 1)
    local groups = int_arg('groups', opts.groups or 1, 1)
    if cin % groups ~= 0 or cout % groups ~= 0 then
        error(string.format('autonad: nn.Conv2d: groups %d must divide in %d and out %d', groups, cin, cout), 3)
    end
    self.in_channels, self.out_channels, self.k, self.groups = cin, cout, k, groups
    self.params = ffi.new('nad_conv2d_params', int_arg('stride', opts.stride or 1, 1),
        int_arg('pad', opts.pad or 0, 0), int_arg('dilation', opts.dilation or 1, 1), groups)
    self.ws = opts.workspace or require('autonad.workspace').default
    self.need_grad_input = opts.grad_input ~= false
    -- PyTorch's default: kaiming_uniform(a = sqrt 5) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    -- the bias from the same bound
    local rng = opts.rng or random.default
    local bound = 1 / math.sqrt(cin / groups * k * k)
    rng:uniform_(self:add_param('weight', tensor.new(cout, k, k, cin / groups)), -bound, bound)
    if opts.bias ~= false then rng:uniform_(self:add_param('bias', tensor.new(cout)), -bound, bound) end
end

function Conv2d:forward(x)
    check(C.nad_conv2d_forward(self.ws, self.params, x, self.weight, self.bias, self.output))
    return self.output
end

function Conv2d:backward(x, dy)
    local dx = self.need_grad_input and self.grad_input or nil
    check(C.nad_conv2d_backward(self.ws, self.params, x, self.weight, dy, dx, self.grad.weight,
        self.bias and self.grad.bias or nil))
    return dx
end

function Conv2d:__tostring()
    local p = self.params
    return string.format('nn.Conv2d(%d, %d, k=%d, stride=%d, pad=%d, dilation=%d, groups=%d%s)',
        self.in_channels, self.out_channels, self.k, p.stride, p.pad, p.dilation, p.groups,
        self.bias and '' or ', bias=false')
end

return Conv2d
