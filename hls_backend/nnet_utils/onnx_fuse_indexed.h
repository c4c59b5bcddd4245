#ifndef ONNX_FUSE_INDEXED_H_
#define ONNX_FUSE_INDEXED_H_

// A fused io_parallel conv whose epilogue differs per output channel (a per-channel ApplyAlpha). hls4ml's
// io_parallel conv loops write each output through nnet::cast, which does not get the channel: the stock conv
// (WB_T::produce) writes into the producer's result type, then each element goes through the layer's write-back
// with its channel (outputs are channels-last: the channel is the index modulo n_chan), in the same function.

namespace nnet {

template <class data_T, class res_T, class WB_T>
void onnx_fuse_indexed(data_T data[WB_T::n_in], res_T res[WB_T::n_out],
                       typename WB_T::weight_t weights[WB_T::n_weights], typename WB_T::bias_t biases[WB_T::n_biases]) {
    #pragma HLS INLINE
    typename WB_T::product_t product[WB_T::n_out];
    #pragma HLS ARRAY_PARTITION variable=product complete
    WB_T::template produce<data_T>(data, product, weights, biases);
WriteBack:
    for (unsigned i = 0; i < WB_T::n_out; i++) {
        #pragma HLS UNROLL
        res[i] = WB_T::write_back(product[i], i % WB_T::n_chan);
    }
}

} // namespace nnet

#endif
