// DQ bit values used by the kernels. Mirrors gpucal/dq.py (tests/test_dq.py checks it).
#pragma once

#define GPUCAL_DO_NOT_USE     1u
#define GPUCAL_SATURATED      2u
#define GPUCAL_JUMP_DET       4u
#define GPUCAL_PERSISTENCE    32u
#define GPUCAL_CHARGELOSS     128u
#define GPUCAL_NO_GAIN_VALUE  524288u
