-- autonad.pipeline.context: what every stage of a run shares: the checked recipe, the run
-- directory (resolved recipe, logs, checkpoints, results), the search space, the data splits
-- and loaders, and the supernet. Stages (pipeline/*.lua) take a context and write their
-- results into the run directory, so each can run alone and resume.
local ffi = require 'ffi'
local autonad = require 'autonad'
local json = require 'autonad.json'
local space_mod = require 'autonad.space'
local data = require 'autonad.data'

local Context = {}
Context.__index = Context

local M = {}

--- Creates directory path (and its parents); errors name it.
local function mkdir_p(path)
    local ok = os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
    if ok ~= 0 and ok ~= true then error('autonad: cannot create the directory ' .. path, 0) end
end
M.mkdir_p = mkdir_p

local function exists(path)
    local f = io.open(path, 'rb')
    if f then f:close() end
    return f ~= nil
end
M.exists = exists

local function deep_merge(dst, src)
    for k, v in pairs(src) do
        if type(v) == 'table' and type(dst[k]) == 'table' and #v == 0 then deep_merge(dst[k], v)
        else dst[k] = v end
    end
    return dst
end

--- The checked search space of a recipe: its space (a name, a path or a table) with its
--- space_overrides merged in.
function M.space_of(recipe)
    local s = recipe.space
    if type(s) == 'string' then s = space_mod.load(s)
    elseif type(s) == 'table' then s = json.decode(json.encode(s))
    else error('autonad: recipe: space must be a name, a path or a table', 0) end
    if recipe.space_overrides then deep_merge(s, recipe.space_overrides) end
    return space_mod.check(s)
end

--- A context for a checked recipe. opts.quiet silences progress lines.
function M.new(recipe, opts)
    opts = opts or {}
    local self = setmetatable({ recipe = recipe, quiet = opts.quiet, dir = recipe.output }, Context)
    mkdir_p(self.dir)
    autonad.set_num_threads(recipe.threads)
    self.space = M.space_of(recipe)
    -- recipe.json is the recipe the run was created with; every later invocation (which may
    -- --set other values, e.g. threads for a latency measurement) is appended to recipes.jsonl
    if not exists(self:path('recipe.json')) then json.write(self:path('recipe.json'), recipe) end
    self:log('recipes', { time = os.date('!%Y-%m-%dT%H:%M:%SZ'), recipe = recipe })
    return self
end

--- A path inside the run directory.
function Context:path(name) return self.dir .. '/' .. name end

--- Prints a line for the user (stderr), unless quiet.
function Context:say(fmt, ...)
    if not self.quiet then io.stderr:write(string.format(fmt, ...), '\n') end
end

--- Appends a record to the run's JSON-lines log <name>.jsonl.
function Context:log(name, record)
    local f = assert(io.open(self:path(name .. '.jsonl'), 'ab'))
    f:write(json.encode(record), '\n')
    f:close()
end

-- 'shared:<rel>' names a path inside the shared data folder ($AUTONAD_DATA or ../shared/data)
local function resolve(key, path)
    if type(path) ~= 'string' or not path:match('^shared:') then return path end
    local root = data.shared_root()
    if not root then
        error('autonad: recipe: ' .. key .. " = '" .. path .. "' but there is no shared data folder " ..
            '(set AUTONAD_DATA, or give ' .. key .. ' as a path)', 0)
    end
    return root .. '/' .. path:sub(8)
end

--- The data: {train =, val =, test = datasets, classes = names, task =}. Generated data
--- gives three disjoint generated sets; files come from the adapter with split files or a
--- seeded stratified split.
function Context:data()
    if self._data then return self._data end
    local d, r = self.recipe.data, self.recipe
    local out = { task = r.task }
    if d.kind == 'generated' then
        local n, ratios = d.n, d.ratios
        local counts = { math.floor(n * ratios[1] + 0.5), math.floor(n * ratios[2] + 0.5) }
        counts[3] = n - counts[1] - counts[2]
        local first = 0
        for i, name in ipairs({ 'train', 'val', 'test' }) do
            out[name] = data.generated.load({ n = counts[i], height = d.size[1], width = d.size[2],
                surface = d.surface, classes = d.classes, seed = r.seed, task = r.task, first = first })
            first = first + counts[i]
        end
    else
        local root = resolve('data.root', d.root)
        if not root then error('autonad: recipe: data.root is required for data.kind = ' .. d.kind, 0) end
        local ds = data.load(d.kind, root, d.options)
        local sp
        if d.splits then sp = data.split.from_files(ds, resolve('data.splits', d.splits))
        elseif ds.splits and next(ds.splits) then sp = ds.splits -- the layout's own (VOC)
        else sp = data.split.stratified(ds, { train = d.ratios[1], val = d.ratios[2], test = d.ratios[3] }, r.seed) end
        for _, name in ipairs({ 'train', 'val', 'test' }) do
            if not sp[name] then error('autonad: recipe: data.splits lacks a ' .. name .. ' split', 0) end
            out[name] = ds:subset(sp[name], name)
        end
    end
    out.classes = out.train.classes
    self._data = out
    return out
end

--- Number of classes the network predicts.
function Context:num_classes() return #self:data().classes end

local augments = {
    none = nil,
    flips_rotations = { p_hflip = 0.5, p_vflip = 0.5, p_rot90 = 0.75 },
    -- reference section 6: flips/rotations + affine + photometric
    finetune = { p_hflip = 0.5, p_vflip = 0.5, p_rot90 = 0.75, p_affine = 0.5, scale_lo = 0.8,
        scale_hi = 1.2, translate = 0.1, shear_deg = 8, p_blur = 0.1, blur_sigma_lo = 0.3,
        blur_sigma_hi = 1.0, p_sharpen = 0.1, sharpen_lo = 0.2, sharpen_hi = 0.5, p_dropout = 0.1,
        dropout_lo = 0.0, dropout_hi = 0.02, p_contrast = 0.3, contrast_lo = 0.8, contrast_hi = 1.2 },
}

--- A loader over split (train/val/test) with batch size batch. augment: a name above or a
--- table; eval loaders do not shuffle. max_images limits the samples to that many evenly
--- spaced through the split (split files are often sorted by class: a prefix would drop
--- classes).
function Context:loader(split, batch, augment, max_images)
    local d, r = self.recipe.data, self.recipe
    local ds = self:data()[split]
    if max_images and max_images < #ds.samples then
        local idx, n = {}, #ds.samples
        for i = 1, max_images do idx[i] = math.floor((i - 0.5) * n / max_images) + 1 end
        ds = ds:subset(idx, split)
    end
    local aug = augment
    if type(augment) == 'string' then
        if augments[augment] == nil and augment ~= 'none' then
            error("autonad: recipe: augment '" .. augment .. "' is not one of none, flips_rotations, finetune", 0)
        end
        aug = augments[augment]
    end
    return data.loader.new(ds, { batch_size = batch, height = d.size[1], width = d.size[2],
        channels = d.channels, threads = d.workers, seed = r.seed, shuffle = split == 'train',
        drop_last = split == 'train', augment = aug, mean = d.mean, std = d.std, task = r.task })
end

--- The supernet for this run (built once; weights from the seed).
function Context:supernet()
    if not self._net then
        local Supernet = require 'autonad.supernet'
        self._net = Supernet.new(self.space, { in_channels = self.recipe.data.channels,
            classes = self:num_classes(), head = self.recipe.task == 'segmentation' and 'seg' or 'cls',
            seed = self.recipe.seed })
    end
    return self._net
end

M.Context = Context
return M
