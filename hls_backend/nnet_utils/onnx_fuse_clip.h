#ifndef ONNX_FUSE_CLIP_H_
#define ONNX_FUSE_CLIP_H_

// Clip(x, low, high) as one hls4ml stage, for graphs whose Clip was not fused. Each element is computed exactly as
// the write-back of a fused Clip (onnx_fuse/patterns.py, CLIP): compare the input in its own type against the
// double bounds, then convert the chosen value to the result type.

#include "hls_stream.h"
#include "nnet_common.h"

namespace nnet {

template <class data_T, class res_T, typename CONFIG_T>
void onnx_fuse_clip(data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in]) {
    #pragma HLS PIPELINE
    for (int ii = 0; ii < CONFIG_T::n_in; ii++) {
        data_T pre = data[ii];
        res[ii] = pre < CONFIG_T::low ? (res_T)CONFIG_T::low : pre > CONFIG_T::high ? (res_T)CONFIG_T::high : (res_T)pre;
    }
}

template <class data_T, class res_T, typename CONFIG_T>
void onnx_fuse_clip(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    typedef typename data_T::value_type in_t;
    typedef typename res_T::value_type out_t;
ClipLoop:
    for (int i = 0; i < CONFIG_T::n_in / res_T::size; i++) {
        #pragma HLS PIPELINE
        data_T in_data = data.read();
        res_T out_data;
        PRAGMA_DATA_PACK(out_data)
    ClipPackLoop:
        for (int j = 0; j < res_T::size; j++) {
            #pragma HLS UNROLL
            in_t pre = in_data[j];
            out_data[j] = pre < CONFIG_T::low ? (out_t)CONFIG_T::low : pre > CONFIG_T::high ? (out_t)CONFIG_T::high : (out_t)pre;
        }
        res.write(out_data);
    }
}

} // namespace nnet

#endif
