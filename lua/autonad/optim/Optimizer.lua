-- autonad.optim.Optimizer: what SGD, Adam and AdamW share. It holds the parameter and
-- gradient lists (as module:parameters() returns them), one state table per parameter, the
-- per-parameter step counts, slice stepping and state_dict / load_state_dict.
--
-- Slices: opt:step(slices) steps only slices[i] of parameter i, a list of lengths (one per
-- dim) naming the leading slice P[:l1, :l2, ...] (W[:out,:in] is {out, in}); slices[i] = nil
-- (or false) skips parameter i, slices[i] = true steps all of it, and slices[i] = a function
-- (full tensor -> view, e.g. a supernet's kernel crop or diagonal) steps that view of the
-- parameter, its gradient and its state alike (cached per function). The state tensors are kept
-- for the full parameter and narrowed the same way, so a slice continues from what earlier
-- (smaller or larger) slices left there. Step counts are kept per parameter: a parameter's
-- count advances by one whenever any slice of it is stepped. So Adam's bias correction for an
-- element first reached at count t uses t, not 1 (its moments start from zero, as in a
-- weight-sharing supernet trained with one optimiser per full weight); SGD's "first step"
-- (buffer = gradient) is the parameter's first step, and elements first reached later start
-- from a zero buffer (the same thing unless dampening is non-zero).
local class = require 'autonad.class'
local tensor = require 'autonad.tensor'

local Optimizer = class('Optimizer')

local function shape_str(t) return table.concat(t:size(), 'x') end

-- Subclasses set: Cls.options = { name = {kind = 'number'|'boolean'|'betas', default = v} },
-- Cls.state_names = {...} (state tensors per parameter), Cls:_state_needed() (bool),
-- Cls:_prepare() (fill the C parameter block from the fields), and
-- Cls:_update(i, count, p, g, views) (one C call; views holds the narrowed state tensors).

--- Checks opts against the class's options (unknown keys, kinds), fills defaults into self.
function Optimizer:_configure(opts)
    local name, spec = self.__name, self.options
    if opts ~= nil and type(opts) ~= 'table' then
        error('optim.' .. name .. ': options must be a table, got ' .. type(opts), 4)
    end
    opts = opts or {}
    for k in pairs(opts) do
        if not spec[k] then
            local known = {}
            for key in pairs(spec) do known[#known + 1] = key end
            table.sort(known)
            error(string.format("optim.%s: unknown option '%s' (known: %s)", name, tostring(k),
                table.concat(known, ', ')), 4)
        end
    end
    for key, s in pairs(spec) do
        local v = opts[key]
        if v == nil then v = s.default end
        if v == nil then error(string.format("optim.%s: option '%s' is required", name, key), 4) end
        local ok
        if s.kind == 'betas' then
            ok = type(v) == 'table' and #v == 2 and type(v[1]) == 'number' and type(v[2]) == 'number'
            if ok then v = { v[1], v[2] } end
        else
            ok = type(v) == s.kind
        end
        if not ok then
            error(string.format("optim.%s: option '%s' must be %s, got %s", name, key,
                s.kind == 'betas' and 'a list of two numbers' or 'a ' .. s.kind, tostring(v)), 4)
        end
        self[key] = v
    end
end

function Optimizer:init(params, grads, opts)
    local name = self.__name
    if type(params) ~= 'table' or type(grads) ~= 'table' then
        error('optim.' .. name .. ': expected (params, grads, opts) with two lists of tensors', 3)
    end
    if #params ~= #grads then
        error(string.format('optim.%s: %d params but %d grads', name, #params, #grads), 3)
    end
    for i = 1, #params do
        local p, g = params[i], grads[i]
        if not tensor.is_tensor(p) or not tensor.is_tensor(g) then
            error(string.format('optim.%s: params[%d] and grads[%d] must be tensors', name, i, i), 3)
        end
        if shape_str(p) ~= shape_str(g) or p:dim() ~= g:dim() then
            error(string.format('optim.%s: grads[%d] is %s but params[%d] is %s', name, i,
                shape_str(g), i, shape_str(p)), 3)
        end
    end
    self.params, self.grads = params, grads
    self:_configure(opts)
    self.state, self.steps = {}, {}
    for i = 1, #params do
        self.state[i], self.steps[i] = {}, 0
    end
    self._views = {} -- [i][slice key] = {p, g, state views...}: narrowed views, reused
end

-- The full state tensors of parameter i, created (zero) on first use.
function Optimizer:_full_state(i)
    local st = self.state[i]
    if self:_state_needed() then
        for _, sn in ipairs(self.state_names) do
            st[sn] = st[sn] or tensor.new(self.params[i]:size())
        end
    end
    return st
end

-- Narrowed views {p, g, state...} of parameter i for slice sl (true = whole), or nil when the
-- slice is empty.
function Optimizer:_slice_views(i, sl)
    local p = self.params[i]
    local key = 'all'
    if type(sl) == 'function' then
        key = sl
    elseif sl ~= true then
        if type(sl) ~= 'table' then
            error(string.format('optim.%s.step: slices[%d] must be a list of lengths or true, got %s',
                self.__name, i, tostring(sl)), 3)
        end
        if #sl ~= p:dim() then
            error(string.format('optim.%s.step: slices[%d] has %d lengths but params[%d] has %d dims',
                self.__name, i, #sl, i, p:dim()), 3)
        end
        for d = 1, #sl do
            local l = sl[d]
            if type(l) ~= 'number' or l % 1 ~= 0 or l < 0 or l > p:size(d) then
                error(string.format('optim.%s.step: slices[%d][%d] = %s, expected an integer in 0..%d',
                    self.__name, i, d, tostring(l), p:size(d)), 3)
            end
            if l == 0 then return nil end
        end
        key = table.concat(sl, ',')
    end
    local cache = self._views[i]
    if not cache then
        cache = {}
        self._views[i] = cache
    end
    local v = cache[key]
    -- views made while no state was needed (SGD without momentum) are rebuilt once it is
    if v and (v.stateful or not self:_state_needed()) then return v end
    local st = self:_full_state(i)
    local full = { p, self.grads[i] }
    for _, sn in ipairs(self.state_names) do full[#full + 1] = st[sn] or false end
    v = {}
    for k, t in ipairs(full) do
        if t and type(sl) == 'function' then
            t = sl(t)
        elseif t and sl ~= true then
            for d = 1, #sl do
                if sl[d] < t:size(d) then t = t:narrow(d, 1, sl[d]) end
            end
        end
        v[k] = t
    end
    v.stateful = self:_state_needed()
    cache[key] = v
    return v
end

--- Steps every parameter (slices == nil) or the leading slices given (see the file's head).
--- Uses the current self.lr (a schedule sets it between steps). Returns self.
function Optimizer:step(slices)
    if slices ~= nil and type(slices) ~= 'table' then
        error('optim.' .. self.__name .. '.step: slices must be a table or nil', 2)
    end
    self:_prepare()
    for i = 1, #self.params do
        local sl = true
        if slices then sl = slices[i] end
        if sl then
            local v = self:_slice_views(i, sl)
            if v then
                self:_update(i, self.steps[i] + 1, v)
                self.steps[i] = self.steps[i] + 1
            end
        end
    end
    return self
end

--- Zeroes every gradient (they accumulate in backward).
function Optimizer:zero_grad()
    for _, g in ipairs(self.grads) do g:zero() end
    return self
end

-- the hyper-parameters as plain data (betas copied)
function Optimizer:_hyper()
    local h = {}
    for key, s in pairs(self.options) do
        h[key] = s.kind == 'betas' and { self[key][1], self[key][2] } or self[key]
    end
    return h
end

--- Plain data and tensors a checkpoint can write: { kind, hyper = {lr, ...}, steps = {n...},
--- state = { {name = tensor, ...} or {} per parameter } }. The state tensors are this
--- optimiser's own (not copies): write them before stepping again.
function Optimizer:state_dict()
    local steps, state = {}, {}
    for i = 1, #self.params do
        steps[i] = self.steps[i]
        local s = {}
        for _, sn in ipairs(self.state_names) do s[sn] = self.state[i][sn] end
        state[i] = s
    end
    return { kind = self.__name, hyper = self:_hyper(), steps = steps, state = state }
end

--- Restores what state_dict gave (state tensors are copied in), so that stepping on continues
--- exactly where the saved optimiser was. Everything is checked before anything changes.
function Optimizer:load_state_dict(s)
    local name = self.__name
    local function bad(msg, ...)
        error('optim.' .. name .. '.load_state_dict: ' .. string.format(msg, ...), 3)
    end
    if type(s) ~= 'table' then bad('expected a table, got %s', type(s)) end
    if s.kind ~= name then
        bad('the state is for %s, this optimiser is %s', tostring(s.kind), name)
    end
    if type(s.hyper) ~= 'table' or type(s.steps) ~= 'table' or type(s.state) ~= 'table' then
        bad('hyper, steps and state must be tables')
    end
    if #s.steps ~= #self.params or #s.state ~= #self.params then
        bad('the state has %d parameters, this optimiser %d', #s.steps, #self.params)
    end
    for i = 1, #self.params do
        local n = s.steps[i]
        if type(n) ~= 'number' or n < 0 or n % 1 ~= 0 then bad('steps[%d] = %s', i, tostring(n)) end
        for sn, t in pairs(s.state[i]) do
            local known = false
            for _, k in ipairs(self.state_names) do known = known or k == sn end
            if not known then bad("state[%d] has an unknown entry '%s'", i, tostring(sn)) end
            if not tensor.is_tensor(t) or shape_str(t) ~= shape_str(self.params[i])
                or t:dim() ~= self.params[i]:dim() then
                bad('state[%d].%s is %s, params[%d] is %s', i, sn,
                    tensor.is_tensor(t) and shape_str(t) or type(t), i, shape_str(self.params[i]))
            end
        end
    end
    -- the hyper-parameters go through the same checks as the constructor's options
    local probe = setmetatable({}, getmetatable(self))
    local ok, err = pcall(probe._configure, probe, s.hyper)
    if not ok then bad('%s', tostring(err)) end

    for key in pairs(self.options) do self[key] = probe[key] end
    for i = 1, #self.params do
        self.steps[i] = s.steps[i]
        local st = self.state[i]
        for _, sn in ipairs(self.state_names) do
            local src = s.state[i][sn]
            if src then
                st[sn] = st[sn] or tensor.new(self.params[i]:size())
                st[sn]:copy(src)
            elseif st[sn] then
                st[sn]:zero()
            end
        end
    end
    self._views = {}
    return self
end

function Optimizer:__tostring()
    local h, keys = self:_hyper(), {}
    for k in pairs(h) do keys[#keys + 1] = k end
    table.sort(keys)
    for j, k in ipairs(keys) do
        local v = h[k]
        v = type(v) == 'table' and '{' .. table.concat(v, ',') .. '}' or tostring(v)
        keys[j] = k .. '=' .. v
    end
    return 'optim.' .. self.__name .. '(' .. table.concat(keys, ', ') .. ')'
end

return Optimizer
