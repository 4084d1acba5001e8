-- test_arch.lua: search spaces and architectures as data: loading and checking a space,
-- sampling (uniform and from a prior), validation errors naming the gene, JSON round trips.
local autonad = require 'autonad'
local space_mod = require 'autonad.space'
local arch = require 'autonad.arch'
local json = require 'autonad.json'
local T = require 'testing'

local tests = {}
local space = space_mod.load('autonad')

function tests.paper_space_loads()
    T.eq(#space.stages, 4)
    T.eq(space.stages[3].width[3], 192)
    T.eq(#space.decoder.slots, 10)
end

function tests.bad_space_key_is_named()
    local s = dofile(require('autonad.ffi').header_path:gsub('core/autonad.h$', 'searchspaces/autonad.lua'))
    s.stages[2].widht = { 32 }
    T.errors(function() space_mod.check(s) end, 'stages[2].widht is not a known key')
    s.stages[2].widht = nil
    s.stages[2].width = { 48 }
    T.errors(function() space_mod.check(s) end, 'stages[2].width[1] must be a positive multiple of head_dim')
end

function tests.samples_are_valid_and_reproducible()
    local r1, r2 = autonad.rng(5), autonad.rng(5)
    for _ = 1, 50 do
        local a, b = arch.sample(space, r1), arch.sample(space, r2)
        arch.validate(space, a)
        T.eq(arch.key(a), arch.key(b))
    end
end

function tests.sampling_covers_every_choice()
    local r, seen = autonad.rng(1), {}
    for _ = 1, 300 do
        local a = arch.sample(space, r)
        seen['w' .. a.width[2]] = true
        seen[a.op[1][1]] = true
        seen[a.decoder.conv[5]] = true
        seen['p' .. a.decoder.pool[4]] = true
    end
    for _, k in ipairs({ 'w32', 'w64', 'w96', 'attention', 'conv', 'mlp', '1x1', '3x3', '5x5',
        'dil3x3', 'dw3x3', 'p5', 'p6' }) do T.ok(seen[k], 'never sampled ' .. k) end
end

function tests.prior_skews_operator_draws()
    local prior = { op = { { { attention = 0.9, conv = 0.05, mlp = 0.05 } } } }
    local r, n = autonad.rng(2), 0
    for _ = 1, 1000 do
        if arch.draw_op(space, r, 1, 1, prior) == 'attention' then n = n + 1 end
    end
    T.ok(n > 860 and n < 940, 'attention drawn ' .. n .. ' times of 1000')
end

function tests.validation_names_the_gene()
    local a = arch.largest(space)
    a.op[2][3] = 'transformer'
    T.errors(function() arch.validate(space, a) end, "arch.op[2][3]: 'transformer' is not one of attention, conv, mlp")
    a = arch.smallest(space)
    a.width[3] = 100
    T.errors(function() arch.validate(space, a) end, 'arch.width[3]: 100 is not one of 128, 160, 192')
    a = arch.smallest(space)
    a.depth[1] = 2
    T.errors(function() arch.validate(space, a) end, 'arch.ratio[1]: must have one entry per block')
    a = arch.smallest(space)
    a.decoder.conv[8] = '7x7'
    T.errors(function() arch.validate(space, a) end, "arch.decoder.conv[8] (out1): '7x7' is not one of")
end

function tests.json_round_trip()
    local a = arch.sample(space, autonad.rng(9))
    local b = arch.from_json(arch.to_json(a))
    T.eq(arch.key(b), arch.key(a))
    arch.validate(space, b)
    T.eq(b.ratio[1][1] % 0.5, 0)
end

function tests.json_errors_name_the_line()
    T.errors(function() json.decode('{"a": 1,\n "b": }') end, 'line 2')
end

return tests
