// Can AMX (TMUL int8) make the Q8_0 GEMM faster than VNNI? (docs/PERFORMANCE.md, "Tried and
// dropped: AMX" and its follow-up.) ggml's blocks carry a scale per 32 weights, so every 16 x 16
// int32 tile of block sums must be stored, converted and scaled into f32 accumulators per block
// of 32: acc += float(S) * (dw * dx). This probe times, on one core with the data in L1, K = 768
// (24 blocks), signed codes (tdpbssd, no zero-point term):
//   the tile work alone (zero, tile loads, dpbssd, tile stores) and the f32 step alone,
//   and both together for a 32 x 32 output (four C tiles per block, 64 f32 accumulators) and a
//   16 x 16 output (one C tile per block), the f32 step lagging the tile work by LAG blocks.
// GOP/s = 2 x multiply-adds. Linux only (asks the kernel for the tile data permission).
//   g++ -O3 -march=sapphirerapids -mamx-tile -mamx-int8 -o /tmp/amxp scripts/probes/amx_q8_probe.cpp && /tmp/amxp
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
struct alignas(64) Cfg { uint8_t p=1, s=0; uint8_t r[14]={}; uint16_t colsb[16]={}; uint8_t rows[16]={}; };
double now(){return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();}
constexpr int NB=24, K=NB*32;
alignas(64) int8_t A[32*K]; alignas(64) int8_t B[2*NB*512]; alignas(64) float dw[2*NB*16]; alignas(64) float dx[32*NB];
float out[32*32];
// The tile work of block b for a 32 x 32 output: A rows 0-15 / 16-31 and B columns 0-15 / 16-31
// of that block into four zeroed C tiles, stored to dst[0..3] (C tile 2i + j: A half i, B half j).
inline void tiles32(int b, int32_t (*dst)[256]) {
  _tile_loadd(4, A+b*32, K); _tile_loadd(5, A+16*K+b*32, K);
  _tile_loadd(6, B+b*512, 64); _tile_loadd(7, B+(NB+b)*512, 64);
  _tile_zero(0);_tile_zero(1);_tile_zero(2);_tile_zero(3);
  _tile_dpbssd(0,4,6); _tile_dpbssd(1,4,7); _tile_dpbssd(2,5,6); _tile_dpbssd(3,5,7);
  _tile_stored(0, dst[0], 64); _tile_stored(1, dst[1], 64); _tile_stored(2, dst[2], 64); _tile_stored(3, dst[3], 64);
}
// The f32 step of block pb: acc += float(S) * (dw * dx) for the four stored C tiles in src.
inline void f32_32(__m512 (&acc)[2][2][16], int pb, const int32_t (*src)[256]) {
  for(int i=0;i<2;++i) for(int j=0;j<2;++j){
    const __m512 w=_mm512_load_ps(dw+(j*NB+pb)*16);
    const int32_t* is=src[i*2+j];
    #pragma GCC unroll 16
    for(int r=0;r<16;++r)
      acc[i][j][r]=_mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(is+r*16)), _mm512_mul_ps(w,_mm512_set1_ps(dx[(i*16+r)*NB+pb])), acc[i][j][r]);
  }
}
inline void store32(__m512 (&acc)[2][2][16]) {
  for(int i=0;i<2;++i)for(int j=0;j<2;++j)for(int r=0;r<16;++r)_mm512_storeu_ps(out+(i*16+r)*32+j*16,acc[i][j][r]);
}
inline void zero32(__m512 (&acc)[2][2][16]) {
  for(int i=0;i<2;++i)for(int j=0;j<2;++j)for(int r=0;r<16;++r)acc[i][j][r]=_mm512_setzero_ps();
}
// 32 x 32 output: block b's tile work, then the f32 step of block b - LAG, over SETS buffer sets.
template<int LAG, int SETS>
__attribute__((noinline)) void run32(int reps){
  alignas(64) static int32_t bb[SETS][4][256];
  for(int rep=0;rep<reps;++rep){
    __m512 acc[2][2][16];
    zero32(acc);
    for(int b=0;b<NB+LAG;++b){
      if(b<NB) tiles32(b, bb[b%SETS]);
      if(b>=LAG) f32_32(acc, b-LAG, bb[(b-LAG)%SETS]);
    }
    store32(acc);
  }
}
__attribute__((noinline)) void amx_only(int reps){
  alignas(64) static int32_t bb[2][4][256];
  for(int rep=0;rep<reps;++rep) for(int b=0;b<NB;++b) tiles32(b, bb[b%2]);
}
__attribute__((noinline)) void amx_nostore(int reps){
  alignas(64) static int32_t bb[256];
  for(int rep=0;rep<reps;++rep) for(int b=0;b<NB;++b){
      _tile_loadd(4, A+b*32, K); _tile_loadd(5, A+16*K+b*32, K);
      _tile_loadd(6, B+b*512, 64); _tile_loadd(7, B+(NB+b)*512, 64);
      _tile_dpbssd(0,4,6); _tile_dpbssd(1,4,7); _tile_dpbssd(2,5,6); _tile_dpbssd(3,5,7);}
  _tile_stored(0, bb, 64);
}
__attribute__((noinline)) void f32_only(int reps){
  alignas(64) static int32_t bb[2][4][256];
  for(int rep=0;rep<reps;++rep){
    __m512 acc[2][2][16];
    zero32(acc);
    for(int pb=0;pb<NB;++pb) f32_32(acc, pb, bb[pb%2]);
    store32(acc);
  }
}

template<int LAG>
__attribute__((noinline)) void run16(int reps){
  alignas(64) static int32_t bb[4][256];
  for(int rep=0;rep<reps;++rep){
  for(int h=0;h<4;++h){ // 4 16x16 output tiles = same work as one 32x32
  const int8_t* Ah=A+(h/2)*16*K; const int8_t* Bh=B+(h%2)*NB*512; const float* dwh=dw+(h%2)*NB*16; const float* dxh=dx+(h/2)*16*NB;
  __m512 acc[16];
  for(int r=0;r<16;++r)acc[r]=_mm512_setzero_ps();
  for(int b=0;b<NB+LAG;++b){
    if(b<NB){
      _tile_loadd(4, Ah+b*32, K); _tile_loadd(6, Bh+b*512, 64);
      switch(b%4){case 0:_tile_zero(0);break;case 1:_tile_zero(1);break;case 2:_tile_zero(2);break;default:_tile_zero(3);}
      switch(b%4){case 0:_tile_dpbssd(0,4,6);_tile_stored(0,bb[0],64);break;case 1:_tile_dpbssd(1,4,6);_tile_stored(1,bb[1],64);break;
                  case 2:_tile_dpbssd(2,4,6);_tile_stored(2,bb[2],64);break;default:_tile_dpbssd(3,4,6);_tile_stored(3,bb[3],64);}
    }
    int pb=b-LAG;
    if(pb>=0){
        const __m512 w=_mm512_load_ps(dwh+pb*16);
        const int32_t* is=bb[pb%4];
        #pragma GCC unroll 16
        for(int r=0;r<16;++r)
          acc[r]=_mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(is+r*16)), _mm512_mul_ps(w,_mm512_set1_ps(dxh[r*NB+pb])), acc[r]);
    }
  }
  for(int r=0;r<16;++r)_mm512_storeu_ps(out+r*32+(h%2)*16+(h/2)*512,acc[r]);
  }}
}
template<class F> double rate(F f,int reps){ double best=1e9; for(int i=0;i<20;++i){double t=now(); f(reps); best=std::min(best,now()-t);} return 2.0*32*32*K*reps/best/1e9; }
int main(){
  if(syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)){puts("no amx perm");return 1;}
  Cfg c; for(int i=0;i<4;++i){c.colsb[i]=64;c.rows[i]=16;} c.colsb[4]=c.colsb[5]=32; c.rows[4]=c.rows[5]=16; c.colsb[6]=c.colsb[7]=64; c.rows[6]=c.rows[7]=8;
  _tile_loadconfig(&c);
  for(auto&v:A) v=rand()%255-127;
  for(auto&v:B) v=rand()%255-127;
  for(auto&v:dw) v=0.01f;
  for(auto&v:dx) v=0.02f;
  int reps=2000;
  printf("amx only (zero, 4 loads, 4 dpbssd, 4 stores): %.0f GOP/s\n", rate(amx_only,reps));
  printf("amx no store/zero (accumulating): %.0f GOP/s\n", rate(amx_nostore,reps));
  printf("32x32 full lag1: %.0f GOP/s\n", rate(run32<1,2>,reps));
  printf("32x32 full lag2: %.0f GOP/s\n", rate(run32<2,2>,reps));
  printf("f32 only: %.0f GOP/s\n", rate(f32_only,reps));
  printf("32x32 4 sets lag3: %.0f GOP/s\n", rate(run32<3,4>,reps));
  printf("16x16 lag1: %.0f GOP/s\n", rate(run16<1>,reps));
  printf("16x16 lag2: %.0f GOP/s\n", rate(run16<2>,reps));
  printf("16x16 lag3: %.0f GOP/s\n", rate(run16<3>,reps));
  _tile_release();
}
