#pragma once
// The interface every layer provides, written down once (not a base class; dlib's habit).
//
// A layer *spec* is what user code names in a network: a small template such as dense<1000> or
// batch_norm<>. It provides
//     template <class Policy, class InShape> using layer = ...;   // the layer class for an input shape
// The layer class L then provides:
//     using format = typename Policy::format;   using in_shape = InShape;   using out_shape = ...;
//     static std::string describe();                       // "dense(784->1000, progressive)", for logs and export
//     void init(rng&);                                     // parameter initialization
//     void forward(const batch_tensor<F>& x, batch_tensor<F>& y, context&);
//     void backward(const batch_tensor<F>& x, const batch_tensor<F>& y, const batch_tensor<F>& dy,
//                   batch_tensor<F>* dx, context&);        // dx == nullptr: the input needs no gradient;
//                                                          // parameter gradients are overwritten, not summed
//     template <class Fn> void for_each_parameter(Fn&&);   // fn(parameter<F>&) for each learnable tensor
//     void save(io::safetensors&, const std::string& prefix) const;   // the trained binary network
//     void load(const io::safetensors&, const std::string& prefix);   // inverse of save
//     template <class Fn> void for_each_state(Fn&&);       // fn(name, std::vector<float>&): non-learned
//                                                          // state such as batch-norm running statistics
// Shape requirements that a spec places on its input are static_asserts that name the layer.
#include <string>

#include "pbnn/context.hpp"
#include "pbnn/io/safetensors.hpp"
#include "pbnn/parameter.hpp"
#include "pbnn/policy.hpp"
#include "pbnn/shape.hpp"
#include "pbnn/tensor.hpp"
