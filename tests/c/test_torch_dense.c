/* test_torch_dense.c: LayerNorm, GroupNorm (8 and 4 groups) and two-head attention built from
   nad_matmul + nad_softmax against PyTorch (tests/torch/gen_dense.py), to 1e-4 relative. */
#include "check.h"
#include <criterion/criterion.h>

static void free_all(nad_tensor **t, int n)
{
    for (int i = 0; i < n; i++) nad_tensor_free(t[i]);
}

/* records: x, gamma, beta, y, dy, dx, dgamma, dbeta */
Test(torch_dense, layernorm_matches_pytorch)
{
    nad_tensor *r[8];
    cr_assert_eq(tc_load_ref("layernorm", r, 8), 8);
    nad_tensor *y = tc_empty(), *mean = tc_empty(), *rstd = tc_empty(), *dx = tc_empty();
    nad_tensor *dg = tc_zeros(TC_SIZES(24)), *db = tc_zeros(TC_SIZES(24));
    cr_assert_eq(nad_layernorm_forward(1e-6f, r[0], r[1], r[2], y, mean, rstd), 0, "%s",
                 nad_last_error());
    cr_assert(tc_close(y, r[3], 1e-4, 1e-5));
    cr_assert_eq(nad_layernorm_backward(r[0], r[1], mean, rstd, r[4], dx, dg, db), 0, "%s",
                 nad_last_error());
    cr_assert(tc_close(dx, r[5], 1e-4, 1e-5));
    cr_assert(tc_close(dg, r[6], 1e-4, 1e-5));
    cr_assert(tc_close(db, r[7], 1e-4, 1e-5));
    nad_tensor *mine[] = {y, mean, rstd, dx, dg, db};
    free_all(mine, 6);
    free_all(r, 8);
}

static void check_groupnorm(const char *name, int groups)
{
    nad_tensor *r[8];
    cr_assert_eq(tc_load_ref(name, r, 8), 8);
    nad_tensor *y = tc_empty(), *mean = tc_empty(), *rstd = tc_empty(), *dx = tc_empty();
    nad_tensor *dg = tc_zeros(TC_SIZES(32)), *db = tc_zeros(TC_SIZES(32));
    cr_assert_eq(nad_groupnorm_forward(groups, 1e-5f, r[0], r[1], r[2], y, mean, rstd), 0, "%s",
                 nad_last_error());
    cr_assert(tc_close(y, r[3], 1e-4, 1e-5), "%s", name);
    cr_assert_eq(nad_groupnorm_backward(groups, r[0], r[1], mean, rstd, r[4], dx, dg, db), 0,
                 "%s", nad_last_error());
    cr_assert(tc_close(dx, r[5], 1e-4, 1e-5), "%s", name);
    cr_assert(tc_close(dg, r[6], 1e-4, 1e-5), "%s", name);
    cr_assert(tc_close(db, r[7], 1e-4, 1e-5), "%s", name);
    nad_tensor *mine[] = {y, mean, rstd, dx, dg, db};
    free_all(mine, 6);
    free_all(r, 8);
}

Test(torch_dense, groupnorm_8_groups_matches_pytorch) { check_groupnorm("groupnorm_g8", 8); }
Test(torch_dense, groupnorm_4_groups_matches_pytorch) { check_groupnorm("groupnorm_g4", 4); }

/* [N, L, heads*32] viewed as [N, heads, L, 32] (a strided view, no copy) */
static nad_tensor *heads_view(const nad_tensor *t)
{
    nad_tensor *r = nad_tensor_reshape(t, 4, (const int64_t[]){2, 16, 2, 32});
    nad_tensor *p = nad_tensor_permute(r, (const int32_t[]){0, 2, 1, 3});
    nad_tensor_free(r);
    return p;
}

/* records: q, k, v, out, dout, dq, dk, dv ([2, 16, 64], 2 heads of 32). Forward:
   s = q k^T / sqrt(32), p = softmax(s), out = p v. Backward: dp = dout v^T, dv = p^T dout,
   ds = softmax_backward(p, dp), dq = ds k / sqrt(32), dk = ds^T q / sqrt(32). */
Test(torch_dense, attention_from_matmul_and_softmax_matches_pytorch)
{
    nad_tensor *r[8];
    cr_assert_eq(tc_load_ref("attention", r, 8), 8);
    float scale = 1.0f / sqrtf(32.0f);
    nad_tensor *out = tc_zeros(TC_SIZES(2, 16, 64)), *dq = tc_zeros(TC_SIZES(2, 16, 64));
    nad_tensor *dk = tc_zeros(TC_SIZES(2, 16, 64)), *dv = tc_zeros(TC_SIZES(2, 16, 64));
    nad_tensor *q = heads_view(r[0]), *k = heads_view(r[1]), *v = heads_view(r[2]);
    nad_tensor *o = heads_view(out), *g = heads_view(r[4]);
    nad_tensor *qg = heads_view(dq), *kg = heads_view(dk), *vg = heads_view(dv);
    nad_tensor *s = tc_zeros(TC_SIZES(2, 2, 16, 16)), *p = tc_empty();
    nad_tensor *dp = tc_zeros(TC_SIZES(2, 2, 16, 16)), *ds = tc_empty();

    cr_assert_eq(nad_matmul(0, 1, scale, q, k, 0.0f, s), 0, "%s", nad_last_error());
    cr_assert_eq(nad_softmax_forward(s, p), 0, "%s", nad_last_error());
    cr_assert_eq(nad_matmul(0, 0, 1.0f, p, v, 0.0f, o), 0, "%s", nad_last_error());
    cr_assert(tc_close(out, r[3], 1e-4, 1e-5));

    cr_assert_eq(nad_matmul(0, 1, 1.0f, g, v, 0.0f, dp), 0, "%s", nad_last_error());
    cr_assert_eq(nad_matmul(1, 0, 1.0f, p, g, 0.0f, vg), 0, "%s", nad_last_error());
    cr_assert_eq(nad_softmax_backward(p, dp, ds), 0, "%s", nad_last_error());
    cr_assert_eq(nad_matmul(0, 0, scale, ds, k, 0.0f, qg), 0, "%s", nad_last_error());
    cr_assert_eq(nad_matmul(1, 0, scale, ds, q, 0.0f, kg), 0, "%s", nad_last_error());
    cr_assert(tc_close(dq, r[5], 1e-4, 1e-5));
    cr_assert(tc_close(dk, r[6], 1e-4, 1e-5));
    cr_assert(tc_close(dv, r[7], 1e-4, 1e-5));
    nad_tensor *mine[] = {out, dq, dk, dv, q, k, v, o, g, qg, kg, vg, s, p, dp, ds};
    free_all(mine, 16);
    free_all(r, 8);
}
