/* A build's first write after reads, on a cache closed cleanly: a new process opens the
 * cache (served by a read-only instance until something writes), reads its entries one
 * by one in random order, sets one new entry after AT gets (which opens the store for
 * writing) and reads on. Prints the mean cost of a get before and after the set, and the
 * set's time (the writable open). The cache holds the seed workload's entries
 * (`src/components/moduleI.tsx` in `transform`, I < 100,000), for instance one that
 * bench/node/worker.js's nexxo-manager write-read left in DIR/.nexxo_cache; copy it
 * before each run (the set changes it), and `sync` after the copy, or the writable open
 * waits for the copy's writeback.
 *
 *   cc -O2 -Iinclude bench/c/switch.c -Lbuild/lib -lnexxo_cache \
 *      -Wl,-rpath,$PWD/build/lib -o /tmp/switch_c
 *   /tmp/switch_c CACHE_DIR AT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nexxo_cache.h"
static double now_us(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
int main(int argc,char**argv){
  if(argc!=3||atoi(argv[2])<=0||atoi(argv[2])>=100000){fprintf(stderr,"usage: %s CACHE_DIR AT (0 < AT < 100000)\n",argv[0]);return 2;}
  int N=100000, at=atoi(argv[2]);
  int *order=malloc(N*sizeof(int)); for(int i=0;i<N;i++)order[i]=i;
  srand(42); for(int i=N-1;i>0;i--){int j=rand()%(i+1);int t=order[i];order[i]=order[j];order[j]=t;}
  nexxo_cache*c; if(nexxo_cache_open(argv[1],NULL,&c)!=NEXXO_OK){fprintf(stderr,"open\n");return 1;}
  static unsigned char buf[1<<16]; size_t len; char k[128]; int hits=0;
  double t0=now_us(), tset=0, tafter=0;
  for(int j=0;j<N;j++){
    if(j==at){double s=now_us(); if(nexxo_cache_set(c,"transform",(const unsigned char*)"src/changed.tsx",15,buf,1000)!=NEXXO_OK)return 1; tset=now_us()-s; tafter=now_us();}
    int n=snprintf(k,sizeof k,"src/components/module%d.tsx",order[j]);
    if(nexxo_cache_get_into(c,"transform",(const unsigned char*)k,n,buf,sizeof buf,&len)==NEXXO_OK)hits++;
  }
  double t1=now_us();
  printf("before %.0f ns/get after %.0f ns/get set %.1f ms hits %d\n",(tafter-t0)*1e3/at,(t1-tafter)*1e3/(N-at),tset/1e3,hits);
  nexxo_cache_close(c); return 0;}
