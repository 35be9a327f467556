/* Which huge pages matter for fast-mode hashing: librandomx from C, in one process, one key,
 * two datasets (one in transparent huge pages by madvise, one in reserved pages) and VMs with
 * the library's scratchpad or a reserved-page one, hashed in rotating order in short rounds on
 * two threads, so all four see the same machine. vigil's configuration with nothing reserved
 * is "thp+4k-scratch"; rxref --largepages is "huge+huge-scratch".
 *
 *   cc -O2 -o /tmp/page-kinds bench/randomx/page-kinds.c -lrandomx -lpthread
 *   old=$(cat /proc/sys/vm/nr_hugepages); echo 1300 > /proc/sys/vm/nr_hugepages
 *   /tmp/page-kinds 1500 6; echo "$old" > /proc/sys/vm/nr_hugepages
 *
 * Arguments: hashes per thread per round, rounds. Needs root for the reserved pages. */
#include <randomx.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/mman.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static randomx_cache *cache;
typedef struct { randomx_dataset *ds; unsigned long s,c; } ia;
static void *iw(void *p){ia*a=p;randomx_init_dataset(a->ds,cache,a->s,a->c);return NULL;}
static randomx_dataset *build(randomx_flags f,int thp){
  randomx_dataset *ds=randomx_alloc_dataset(f); if(!ds){fprintf(stderr,"alloc\n");exit(1);}
  if(thp){ uintptr_t m=(uintptr_t)randomx_get_dataset_memory(ds); size_t n=randomx_dataset_item_count()*64;
    uintptr_t a=(m+4095)&~4095UL; madvise((void*)a,(m+n-a)&~4095UL,MADV_HUGEPAGE);}
  unsigned long tot=randomx_dataset_item_count(); pthread_t th[2]; ia args[2];
  for(int i=0;i<2;i++){args[i].ds=ds;args[i].s=i*(tot/2);args[i].c=i?tot-tot/2:tot/2;pthread_create(&th[i],0,iw,&args[i]);}
  for(int i=0;i<2;i++)pthread_join(th[i],0);
  return ds;
}
typedef struct { randomx_vm *vm; unsigned n; } ma;
static void *mine(void *p){ma*a=p;uint8_t blob[76];memset(blob,0x5a,76);uint8_t h[32];unsigned n=0;
  memcpy(blob+39,&n,4);randomx_calculate_hash_first(a->vm,blob,76);
  for(n=1;n<=a->n;n++){memcpy(blob+39,&n,4);randomx_calculate_hash_next(a->vm,blob,76,h);} return NULL;}
int main(int argc,char**argv){
  unsigned per=argc>1?atoi(argv[1]):1000; int rounds=argc>2?atoi(argv[2]):6;
  randomx_flags f=randomx_get_flags()|RANDOMX_FLAG_FULL_MEM;
  cache=randomx_alloc_cache(f|RANDOMX_FLAG_LARGE_PAGES); if(!cache) cache=randomx_alloc_cache(f);
  randomx_init_cache(cache,"test key 000",12);
  randomx_dataset *thp=build(f,1), *huge=build(f|RANDOMX_FLAG_LARGE_PAGES,0);
  const char *names[4]={"thp+4k-scratch","thp+huge-scratch","huge+huge-scratch","huge+4k-scratch"};
  randomx_vm *vms[4][2];
  for(int t=0;t<2;t++){
    vms[0][t]=randomx_create_vm(f,NULL,thp);
    vms[1][t]=randomx_create_vm(f|RANDOMX_FLAG_LARGE_PAGES,NULL,thp);
    vms[2][t]=randomx_create_vm(f|RANDOMX_FLAG_LARGE_PAGES,NULL,huge);
    vms[3][t]=randomx_create_vm(f,NULL,huge);
    for(int k=0;k<4;k++) if(!vms[k][t]){fprintf(stderr,"vm %d\n",k);exit(1);}
  }
  system("grep -E 'AnonHugePages|HugePages_(Total|Free)' /proc/meminfo");
  double sum[4]={0};
  for(int r=0;r<rounds;r++){
    for(int j=0;j<4;j++){int k=(j+r)%4; pthread_t th[2]; ma a[2];
      double t0=now(); for(int t=0;t<2;t++){a[t].vm=vms[k][t];a[t].n=per;pthread_create(&th[t],0,mine,&a[t]);}
      for(int t=0;t<2;t++)pthread_join(th[t],0); double hps=2*per/(now()-t0); sum[k]+=hps;
      printf("round %d %-18s %.1f\n",r,names[k],hps); fflush(stdout);}
  }
  for(int k=0;k<4;k++) printf("mean %-18s %.1f (%.1f%% of huge+huge)\n",names[k],sum[k]/rounds,100*sum[k]/sum[2]);
  return 0;
}
