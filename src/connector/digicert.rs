//! DigiCert adapter. (Being written.)
